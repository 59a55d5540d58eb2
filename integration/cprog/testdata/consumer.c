// A C consumer of a Volley producer (volley_produce_demo), checking from C
// the rules only visible there. Usage: consumer MODE; exit 0 and "ok" on
// success. Modes: basic, reentrant, cancel8, request0, request-1, idle,
// late, refuse, bench, devices, device.
#include <pthread.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

struct state {
  const char* mode;
  int64_t window;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  atomic_int schema_calls, error_calls, release_calls, eos_calls, after_release, tasks;
  atomic_int released;
  int error_code;
  int64_t next_id;
  int64_t batches;
  struct ArrowAsyncProducer* producer;
  struct ArrowAsyncTask* kept;
  int nkept;
  int check_data;
};

static int is(const struct state* s, const char* m) { return strcmp(s->mode, m) == 0; }

static void check_batch(struct state* s, struct ArrowDeviceArray* out) {
  CHECK(out->device_type == ARROW_DEVICE_CPU, "device_type %d", out->device_type);
  CHECK(out->device_id == -1, "device_id %lld (D5)", (long long)out->device_id);
  CHECK(out->sync_event == NULL, "CPU batch with a sync event");
  CHECK(out->reserved[0] == 0 && out->reserved[1] == 0 && out->reserved[2] == 0, "reserved not zeroed (D3)");
  struct ArrowArray* a = &out->array;
  CHECK(a->release != NULL, "extracted array already released");
  CHECK(a->n_children == 2, "n_children %lld", (long long)a->n_children);
  struct ArrowArray* ids = a->children[0];
  CHECK(ids->length == a->length, "child length %lld vs %lld", (long long)ids->length, (long long)a->length);
  if (s->check_data) {
    const int64_t* v = (const int64_t*)ids->buffers[1] + ids->offset;
    for (int64_t i = 0; i < ids->length; i++) {
      CHECK(v[i] == s->next_id, "id %lld, want %lld (T7)", (long long)v[i], (long long)s->next_id);
      s->next_id++;
    }
  }
  if (s->batches % 2 == 0) {
    // D6: move the array (bitwise copy, release = NULL on the source), move
    // its string child out of it, release the parent first and the child
    // after: the child's buffers must stay valid until its own release.
    struct ArrowArray moved = *a;
    a->release = NULL;
    struct ArrowArray child = *moved.children[1];
    moved.children[1]->release = NULL;
    moved.release(&moved);
    CHECK(moved.release == NULL, "release did not mark the moved array released");
    CHECK(child.release != NULL && child.n_buffers == 3, "moved-out child");
    const int32_t* offs = (const int32_t*)child.buffers[1];
    CHECK(offs[child.offset + child.length] >= offs[child.offset], "child offsets after the parent's release");
    child.release(&child);
    CHECK(child.release == NULL, "child release did not mark it released");
    return;
  }
  a->release(a);
  CHECK(a->release == NULL, "release did not mark the array released");
}

static void* cancel_thread(void* p) {
  struct ArrowAsyncProducer* prod = p;
  for (int i = 0; i < 100; i++) prod->cancel(prod);  // X1: idempotent, thread-safe
  return NULL;
}

static int on_schema(struct ArrowAsyncDeviceStreamHandler* self, struct ArrowSchema* schema) {
  struct state* s = self->private_data;
  CHECK(!atomic_load(&s->released), "on_schema after release");
  CHECK(atomic_fetch_add(&s->schema_calls, 1) == 0, "second on_schema (S1)");
  CHECK(self->producer != NULL, "handler->producer unset at on_schema (O2)");
  s->producer = self->producer;
  int want_dev = is(s, "device") ? ARROW_DEVICE_CUDA : ARROW_DEVICE_CPU;
  CHECK(self->producer->device_type == want_dev, "producer device_type %d, want %d (T6)",
        self->producer->device_type, want_dev);
  const char* v = NULL;
  int32_t vl;
  int n = md_find(self->producer->additional_metadata, "volley.demo", &v, &vl);
  CHECK(n == 1, "additional_metadata has %d pairs, want 1 (S6)", n);
  CHECK(vl == 3 && memcmp(v, "1\0x", 3) == 0, "additional_metadata value length %d, want 3 with a zero byte", vl);
  CHECK(schema != NULL && schema->release != NULL, "NULL or released schema");
  CHECK(strcmp(schema->format, "+s") == 0, "schema format %s", schema->format);
  CHECK(schema->n_children == 2 && strcmp(schema->children[0]->format, "l") == 0 &&
            strcmp(schema->children[1]->format, "u") == 0,
        "schema children");
  schema->release(schema);  // S2
  CHECK(schema->release == NULL, "schema release did not mark it released");
  pthread_mutex_lock(&s->mu);
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  if (is(s, "refuse")) return EINVAL;
  if (is(s, "request0")) {
    s->producer->request(s->producer, 0);
    return 0;
  }
  if (is(s, "request-1")) {
    s->producer->request(s->producer, -1);
    return 0;
  }
  if (is(s, "idle")) return 0;  // no demand at all
  if (is(s, "reentrant")) {
    s->producer->request(s->producer, 1);  // S5: from inside on_schema
    return 0;
  }
  s->producer->request(s->producer, s->window);
  return 0;
}

static int on_next_task(struct ArrowAsyncDeviceStreamHandler* self, struct ArrowAsyncTask* task,
                        const char* md) {
  struct state* s = self->private_data;
  if (atomic_load(&s->released)) atomic_fetch_add(&s->after_release, 1);
  if (task == NULL) {
    atomic_fetch_add(&s->eos_calls, 1);
    return 0;
  }
  atomic_fetch_add(&s->tasks, 1);
  s->batches++;
  const char* v = NULL;
  int32_t vl;
  md_find(md, "batch", &v, &vl);
  char want[32];
  snprintf(want, sizeof want, "%lld", (long long)s->batches);
  CHECK(vl == (int32_t)strlen(want) && memcmp(v, want, (size_t)vl) == 0, "task metadata batch=%.*s, want %s", vl, v, want);
  if (is(s, "late")) {
    s->kept = realloc(s->kept, sizeof(struct ArrowAsyncTask) * (size_t)(s->nkept + 1));
    s->kept[s->nkept++] = *task;  // N4: copied by value
    s->producer->request(s->producer, 1);
    return 0;
  }
  if (is(s, "cancel8") && s->batches == 1) {
    struct ArrowAsyncTask copy = *task;
    pthread_t th[8];
    for (int i = 0; i < 8; i++) pthread_create(&th[i], NULL, cancel_thread, s->producer);
    for (int i = 0; i < 8; i++) pthread_join(th[i], NULL);
    s->producer->request(s->producer, 5);  // R3: after cancel, does nothing
    CHECK(copy.extract_data(&copy, NULL) == 0, "extract_data(NULL)");  // T1 discard
    return 0;
  }
  struct ArrowDeviceArray out;
  memset(&out, 0xAB, sizeof out);
  int rc = task->extract_data(task, &out);
  CHECK(rc == 0, "extract_data returned %d", rc);
  if (is(s, "device")) {
    // A (simulated) CUDA batch: structs on the host (D1), buffers device
    // addresses never dereferenced here, an event to wait on (D2, D4).
    CHECK(out.device_type == ARROW_DEVICE_CUDA && out.device_id == 0, "device %d:%lld", out.device_type,
          (long long)out.device_id);
    CHECK(out.sync_event != NULL, "CUDA batch without a sync event");
    CHECK(out.reserved[0] == 0 && out.reserved[1] == 0 && out.reserved[2] == 0, "reserved not zeroed (D3)");
    CHECK(out.array.n_children == 2 && out.array.children[0]->length == out.array.length, "layout");
    CHECK(out.array.children[0]->buffers[1] != NULL && out.array.children[1]->n_buffers == 3, "buffers");
    out.array.release(&out.array);
    CHECK(out.array.release == NULL, "release did not mark the array released");
    s->producer->request(s->producer, 1);
    return 0;
  }
  check_batch(s, &out);
  // R2: re-entrant request from inside the callback, every time.
  s->producer->request(s->producer, 1);
  return 0;
}

static void on_error(struct ArrowAsyncDeviceStreamHandler* self, int code, const char* msg,
                     const char* md) {
  struct state* s = self->private_data;
  (void)md;
  CHECK(!atomic_load(&s->released), "on_error after release");
  atomic_fetch_add(&s->error_calls, 1);
  s->error_code = code;
  CHECK(msg != NULL, "on_error with a NULL message");
}

static void release(struct ArrowAsyncDeviceStreamHandler* self) {
  struct state* s = self->private_data;
  CHECK(atomic_fetch_add(&s->release_calls, 1) == 0, "second release (E6)");
  pthread_mutex_lock(&s->mu);
  atomic_store(&s->released, 1);
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

struct run {
  int64_t batches, rows;
  struct ArrowAsyncDeviceStreamHandler* h;
  int rc;
};

static void* produce_thread(void* p) {
  struct run* r = p;
  struct state* s = r->h->private_data;
  if (is(s, "device"))
    r->rc = volley_produce_demo_on(r->batches, r->rows, "cuda:0", 1, r->h);
  else
    r->rc = volley_produce_demo(r->batches, r->rows, r->h);
  return NULL;
}

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  CHECK(argc >= 2, "usage: consumer MODE");
  if (strcmp(argv[1], "devices") == 0) {
    char* j = volley_devices_json();
    CHECK(j != NULL, "volley_devices_json: %s", volley_last_error());
    CHECK(j[0] == '[' && strstr(j, "\"device\":\"cpu\"") != NULL, "devices JSON %s", j);
    printf("%s\n", j);
    volley_free(j);
    volley_db* db = NULL;
    CHECK(volley_open("no-such-driver", "", &db) != 0 && db == NULL, "volley_open of an unknown driver succeeded");
    CHECK(strstr(volley_last_error(), "forgotten import?") != NULL, "last error %s", volley_last_error());
    printf("ok\n");
    return 0;
  }
  struct state* s = t_malloc(sizeof *s);
  s->mode = argv[1];
  s->window = 4;
  s->check_data = 1;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  struct ArrowAsyncDeviceStreamHandler* h = t_malloc(sizeof *h);  // O1
  h->on_schema = on_schema;
  h->on_next_task = on_next_task;
  h->on_error = on_error;
  h->release = release;
  h->private_data = s;  // O5: complete before handing it over

  struct run r = {.batches = 100, .rows = 3, .h = h};
  if (is(s, "reentrant")) r.batches = 5000, r.rows = 1;
  if (is(s, "cancel8") || is(s, "idle")) r.batches = -1;
  if (is(s, "bench")) r.batches = argc > 2 ? atoll(argv[2]) : 100000, r.rows = 1, s->window = 64;
  if (is(s, "device")) r.batches = 20, r.rows = 100;

  double t0 = now(), cpu0 = cpu_seconds();
  pthread_t th;
  pthread_create(&th, NULL, produce_thread, &r);
  if (is(s, "idle")) {
    pthread_mutex_lock(&s->mu);
    while (atomic_load(&s->schema_calls) == 0) pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    double c0 = cpu_seconds(), w0 = now();
    sleep(1);  // the measurement window, not synchronisation
    double used = cpu_seconds() - c0, wall = now() - w0;
    printf("idle cpu %.4f s over %.3f s wall (%.2f%% of a core)\n", used, wall, 100 * used / wall);
    CHECK(used < 0.01 * wall, "idle producer used %.2f%% of a core (want < 1%%)", 100 * used / wall);
    CHECK(atomic_load(&s->tasks) == 0, "tasks without demand (N2)");
    s->producer->cancel(s->producer);
  }
  pthread_join(th, NULL);
  double elapsed = now() - t0, cpu = cpu_seconds() - cpu0;

  CHECK(atomic_load(&s->release_calls) == 1, "release called %d times", atomic_load(&s->release_calls));
  CHECK(atomic_load(&s->after_release) == 0, "callbacks after release");
  if (is(s, "basic") || is(s, "reentrant") || is(s, "late") || is(s, "bench") || is(s, "device")) {
    CHECK(r.rc == 0, "volley_produce_demo = %d (%s)", r.rc, volley_last_error());
    CHECK(atomic_load(&s->eos_calls) == 1, "end of stream %d times", atomic_load(&s->eos_calls));
    CHECK(s->batches == r.batches, "batches %lld, want %lld", (long long)s->batches, (long long)r.batches);
    CHECK(atomic_load(&s->error_calls) == 0, "on_error on a clean stream (code %d)", s->error_code);
  }
  if (is(s, "cancel8") || is(s, "idle")) {
    CHECK(r.rc == ECANCELED, "volley_produce_demo = %d, want ECANCELED", r.rc);
    CHECK(atomic_load(&s->error_calls) == 0, "on_error after a successful cancel (X4, A2)");
    CHECK(atomic_load(&s->eos_calls) == 0, "end of stream after cancel (A2)");
  }
  if (is(s, "request0") || is(s, "request-1")) {
    CHECK(atomic_load(&s->error_calls) == 1 && s->error_code == EINVAL, "on_error %d times, code %d; want EINVAL (R4)",
          atomic_load(&s->error_calls), s->error_code);
    CHECK(r.rc == EINVAL, "volley_produce_demo = %d, want EINVAL", r.rc);
  }
  if (is(s, "refuse")) {
    CHECK(atomic_load(&s->error_calls) == 0 && atomic_load(&s->eos_calls) == 0 && atomic_load(&s->tasks) == 0,
          "calls other than release after a refused schema (S4)");
    CHECK(r.rc == EINVAL, "volley_produce_demo = %d, want the refusal's EINVAL", r.rc);
  }
  if (is(s, "late")) {
    // A4: tasks stay extractable after release; extract half, discard half.
    s->next_id = 0;
    for (int i = 0; i < s->nkept; i++) {
      if (i % 2 == 0) {
        struct ArrowDeviceArray out;
        CHECK(s->kept[i].extract_data(&s->kept[i], &out) == 0, "late extract_data");
        s->check_data = 0;
        check_batch(s, &out);
      } else {
        CHECK(s->kept[i].extract_data(&s->kept[i], NULL) == 0, "late extract_data(NULL)");
      }
    }
    free(s->kept);
  }
  if (is(s, "bench")) {
    printf("ns_per_batch=%.1f cpu_ns_per_batch=%.1f\n", elapsed * 1e9 / (double)r.batches,
           cpu * 1e9 / (double)r.batches);
  }
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->mu);
  t_free(h);
  t_free(s);
  CHECK(atomic_load(&t_live) == 0, "%ld C allocations left", atomic_load(&t_live));
  CHECK(volley_debug_live_allocations() == 0, "%lld C allocations of libvolley left",
        (long long)volley_debug_live_allocations());
  printf("ok\n");
  return 0;
}
