// A C producer driving a Volley consumer (volley_collector, an async.Reader
// behind a handler from cabi.Import). Usage: producer MODE; exit 0 and "ok"
// on success. Modes: basic, error, cancel, cuda-refused, cuda.
#include <pthread.h>

#include "common.h"

struct prod {
  struct ArrowAsyncProducer p;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int64_t demand;
  int cancelled, bad_request;
  atomic_int extracted, discarded;
};

static struct prod* prod_of(struct ArrowAsyncProducer* self) { return self->private_data; }

static void p_request(struct ArrowAsyncProducer* self, int64_t n) {
  struct prod* p = prod_of(self);
  pthread_mutex_lock(&p->mu);
  if (n <= 0) p->bad_request = 1;
  else p->demand += n;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
}

static void p_cancel(struct ArrowAsyncProducer* self) {
  struct prod* p = prod_of(self);
  pthread_mutex_lock(&p->mu);
  p->cancelled = 1;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
}

// ---- schema: struct<id: int64> ----
static void schema_release(struct ArrowSchema* s) {
  for (int64_t i = 0; i < s->n_children; i++) {
    if (s->children[i]->release) s->children[i]->release(s->children[i]);
    t_free(s->children[i]);
  }
  t_free(s->children);
  s->release = NULL;
}
static void leaf_release(struct ArrowSchema* s) { s->release = NULL; }

static void make_schema(struct ArrowSchema* s) {
  memset(s, 0, sizeof *s);
  s->format = "+s";
  s->name = "";
  s->n_children = 1;
  s->children = t_malloc(sizeof(struct ArrowSchema*));
  struct ArrowSchema* c = t_malloc(sizeof *c);
  c->format = "l";
  c->name = "id";
  c->flags = ARROW_FLAG_NULLABLE;
  c->release = leaf_release;
  s->children[0] = c;
  s->release = schema_release;
}

// ---- arrays ----
static void array_release(struct ArrowArray* a) {
  for (int64_t i = 0; i < a->n_children; i++) {
    struct ArrowArray* c = a->children[i];
    if (c->release) c->release(c);
    t_free(c);
  }
  t_free(a->children);
  if (a->n_children == 0 && a->n_buffers == 2) t_free((void*)a->buffers[1]);
  t_free((void*)a->buffers);
  a->release = NULL;
}

struct taskdata {
  struct prod* p;
  int64_t first, rows;
};

static int extract(struct ArrowAsyncTask* task, struct ArrowDeviceArray* out) {
  struct taskdata* td = task->private_data;
  struct prod* p = td->p;
  if (out == NULL) {  // T1/T2: discard frees the task
    atomic_fetch_add(&p->discarded, 1);
    t_free(td);
    return 0;
  }
  memset(out, 0, sizeof *out);
  struct ArrowArray* top = &out->array;
  top->length = td->rows;
  top->n_buffers = 1;
  top->buffers = t_malloc(sizeof(void*));
  top->n_children = 1;
  top->children = t_malloc(sizeof(struct ArrowArray*));
  struct ArrowArray* c = t_malloc(sizeof *c);
  int64_t* data = t_malloc(sizeof(int64_t) * (size_t)(td->rows > 0 ? td->rows : 1));
  for (int64_t i = 0; i < td->rows; i++) data[i] = td->first + i;
  c->length = td->rows;
  c->n_buffers = 2;
  c->buffers = t_malloc(2 * sizeof(void*));
  c->buffers[1] = data;
  c->release = array_release;
  top->children[0] = c;
  top->release = array_release;
  out->device_type = p->p.device_type;
  out->device_id = p->p.device_type == ARROW_DEVICE_CPU ? -1 : 0;
  atomic_fetch_add(&p->extracted, 1);
  t_free(td);
  return 0;
}

static int is(const char* a, const char* b) { return strcmp(a, b) == 0; }

int main(int argc, char** argv) {
  CHECK(argc >= 2, "usage: producer MODE");
  const char* mode = argv[1];
  volley_collector_options o = {.window = 4};
  if (is(mode, "cancel")) o.cancel_after = 3;
  if (is(mode, "cuda")) o.accept_device = ARROW_DEVICE_CUDA;
  volley_collector* col = NULL;
  struct ArrowAsyncDeviceStreamHandler* h = NULL;
  CHECK(volley_collector_new(&o, &col, &h) == 0, "volley_collector_new: %s", volley_last_error());

  struct prod* p = t_malloc(sizeof *p);  // O2: the producer owns its struct
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  p->p.device_type = (is(mode, "cuda") || is(mode, "cuda-refused")) ? ARROW_DEVICE_CUDA : ARROW_DEVICE_CPU;
  p->p.request = p_request;
  p->p.cancel = p_cancel;
  p->p.private_data = p;
  // S6: additional metadata with zero bytes inside keys and values.
  const char* keys[] = {"a\0b", "placement"};
  const int32_t klens[] = {3, 9};
  const char* vals[] = {"\0\0", "cpu (test)"};
  const int32_t vlens[] = {2, 10};
  int64_t mdlen;
  char* md = md_build(2, keys, klens, vals, vlens, &mdlen);
  p->p.additional_metadata = md;
  h->producer = &p->p;

  int64_t batches = is(mode, "cuda") ? 5 : 50, rows = 10;
  if (is(mode, "cancel")) batches = -1;
  int sent = 0;
  if (is(mode, "error")) {
    // E2: on_error before on_schema, with 35 bytes of metadata full of zeros.
    const char* ek[] = {"detail\0x"};
    const int32_t ekl[] = {8};
    const char* ev[] = {"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"};
    const int32_t evl[] = {15};
    int64_t elen;
    char* emd = md_build(1, ek, ekl, ev, evl, &elen);
    CHECK(elen == 35, "error metadata is %lld bytes", (long long)elen);
    h->on_error(h, EIO, "boom", emd);
    t_free(emd);
  } else {
    struct ArrowSchema s;
    make_schema(&s);
    int rc = h->on_schema(h, &s);
    CHECK(s.release == NULL, "schema neither released nor moved by the consumer (S2), rc %d", rc);
    if (is(mode, "cuda-refused")) {
      CHECK(rc == ENOTSUP, "on_schema for a CUDA producer = %d, want ENOTSUP", rc);
    } else {
      CHECK(rc == 0, "on_schema = %d", rc);
      for (int64_t i = 0; batches < 0 || i < batches; i++) {
        pthread_mutex_lock(&p->mu);
        while (p->demand == 0 && !p->cancelled && !p->bad_request) pthread_cond_wait(&p->cv, &p->mu);
        int stop = p->cancelled || p->bad_request;
        if (!stop) p->demand--;
        pthread_mutex_unlock(&p->mu);
        if (stop) break;
        struct taskdata* td = t_malloc(sizeof *td);
        td->p = p;
        td->first = i * rows;
        td->rows = rows;
        struct ArrowAsyncTask t = {.extract_data = extract, .private_data = td};
        rc = h->on_next_task(h, &t, NULL);
        sent++;
        CHECK(rc == 0 || p->cancelled, "on_next_task = %d", rc);
      }
      CHECK(!p->bad_request, "the consumer requested n <= 0");
      if (!p->cancelled) CHECK(h->on_next_task(h, NULL, NULL) == 0, "end of stream refused");
    }
  }
  h->release(h);  // E5: last call; the struct is the consumer's (freed)

  volley_collect_result r;
  CHECK(volley_collector_wait(col, &r) == 0, "volley_collector_wait");
  volley_collector_free(col);
  printf("mode %s: batches %lld rows %lld sum %lld device %lld error %d md %lld pairs %lld extracted %d discarded %d\n",
         mode, (long long)r.batches, (long long)r.rows, (long long)r.sum_first_column, (long long)r.device_batches,
         r.error_code, (long long)r.error_metadata_bytes, (long long)r.metadata_pairs, atomic_load(&p->extracted),
         atomic_load(&p->discarded));
  if (is(mode, "basic")) {
    CHECK(r.error_code == 0, "error %d", r.error_code);
    CHECK(r.batches == batches && r.rows == batches * rows, "read %lld batches", (long long)r.batches);
    int64_t n = batches * rows;
    CHECK(r.sum_first_column == n * (n - 1) / 2, "sum %lld", (long long)r.sum_first_column);
    CHECK(r.metadata_pairs == 2, "additional metadata pairs %lld", (long long)r.metadata_pairs);
  }
  if (is(mode, "error")) {
    CHECK(r.error_code == EIO, "error code %d, want EIO", r.error_code);
    CHECK(r.error_metadata_bytes == 35, "error metadata reached Go with %lld of 35 bytes", (long long)r.error_metadata_bytes);
  }
  if (is(mode, "cancel")) {
    CHECK(r.batches == 3, "read %lld batches, want 3 before the cancel", (long long)r.batches);
    CHECK(p->cancelled, "consumer never called cancel");
  }
  if (is(mode, "cuda-refused")) {
    CHECK(r.error_code == ENOTSUP, "error code %d, want ENOTSUP", r.error_code);
    CHECK(r.batches == 0, "batches from a refused stream");
  }
  if (is(mode, "cuda")) {
    CHECK(r.device_batches == batches && r.batches == batches, "device batches %lld", (long long)r.device_batches);
  }
  CHECK(atomic_load(&p->extracted) + atomic_load(&p->discarded) == sent,
        "extract_data called %d+%d times for %d tasks (T1)", atomic_load(&p->extracted), atomic_load(&p->discarded), sent);
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->mu);
  t_free(md);
  t_free(p);
  CHECK(atomic_load(&t_live) == 0, "%ld C allocations left", atomic_load(&t_live));
  CHECK(volley_debug_live_allocations() == 0, "%lld C allocations of libvolley left",
        (long long)volley_debug_live_allocations());
  printf("ok\n");
  return 0;
}
