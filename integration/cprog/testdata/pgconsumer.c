// A C consumer of a Volley PostgreSQL query (volley_open + volley_query):
// usage: pgconsumer DSN SQL RUNS; runs the query RUNS times on one
// database handle and prints the rows, batches and elapsed ns of the fastest
// run (steady state: the first run also connects and warms the library's
// heap), then "ok".
// It requests 8 tasks ahead, extracts each inside on_next_task, releases it
// and requests one more; it also checks cancel-free completion and that the
// handler is released exactly once.
#include <pthread.h>
#include <time.h>

#include "common.h"

struct state {
  struct ArrowAsyncProducer* producer;
  int64_t rows, batches;
  atomic_int releases, errors, eos;
  int code;
};

static int on_schema(struct ArrowAsyncDeviceStreamHandler* self, struct ArrowSchema* schema) {
  struct state* s = self->private_data;
  s->producer = self->producer;
  schema->release(schema);
  s->producer->request(s->producer, 8);
  return 0;
}

static int on_next_task(struct ArrowAsyncDeviceStreamHandler* self, struct ArrowAsyncTask* task,
                        const char* md) {
  struct state* s = self->private_data;
  (void)md;
  if (task == NULL) {
    atomic_fetch_add(&s->eos, 1);
    return 0;
  }
  struct ArrowDeviceArray out;
  int rc = task->extract_data(task, &out);
  CHECK(rc == 0, "extract_data = %d", rc);
  CHECK(out.device_type == ARROW_DEVICE_CPU, "device %d", out.device_type);
  s->rows += out.array.length;
  s->batches++;
  out.array.release(&out.array);
  s->producer->request(s->producer, 1);
  return 0;
}

static void on_error(struct ArrowAsyncDeviceStreamHandler* self, int code, const char* msg,
                     const char* md) {
  struct state* s = self->private_data;
  (void)md;
  s->code = code;
  atomic_fetch_add(&s->errors, 1);
  fprintf(stderr, "on_error %d: %s\n", code, msg);
}

static void release(struct ArrowAsyncDeviceStreamHandler* self) {
  struct state* s = self->private_data;
  atomic_fetch_add(&s->releases, 1);
}

int main(int argc, char** argv) {
  CHECK(argc == 4, "usage: pgconsumer DSN SQL RUNS");
  int runs = atoi(argv[3]);
  volley_db* db = NULL;
  CHECK(volley_open("postgres", argv[1], &db) == 0, "volley_open: %s", volley_last_error());
  struct state* s = t_malloc(sizeof *s);
  struct ArrowAsyncDeviceStreamHandler* h = t_malloc(sizeof *h);
  h->on_schema = on_schema;
  h->on_next_task = on_next_task;
  h->on_error = on_error;
  h->release = release;
  struct volley_query* q = NULL;
  volley_query_options o = {.device = "cpu", .batch_rows = 10000};
  int64_t best = -1, rows = 0, batches = 0;
  int rc;
  for (int i = 0; i < runs; i++) {
    memset(s, 0, sizeof *s);
    h->private_data = s;
    h->producer = NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK(volley_query(db, argv[2], &o, h, &q) == 0, "volley_query: %s", volley_last_error());
    rc = volley_query_wait(q);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK(rc == 0, "volley_query_wait = %d: %s", rc, volley_last_error());
    volley_query_free(q);
    CHECK(atomic_load(&s->releases) == 1, "%d releases", atomic_load(&s->releases));
    CHECK(atomic_load(&s->errors) == 0 && atomic_load(&s->eos) == 1, "errors %d eos %d", atomic_load(&s->errors),
          atomic_load(&s->eos));
    int64_t ns = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000000 + (t1.tv_nsec - t0.tv_nsec);
    fprintf(stderr, "run %d: %lld ns, %lld batches\n", i, (long long)ns, (long long)s->batches);
    if (best < 0 || ns < best) best = ns, rows = s->rows, batches = s->batches;
  }
  printf("rows=%lld batches=%lld ns=%lld\n", (long long)rows, (long long)batches, (long long)best);
  // A failing query: the handler still gets exactly one release, after on_error.
  struct state* s2 = t_malloc(sizeof *s2);
  h->private_data = s2;
  CHECK(volley_query(db, "SELECT * FROM no_such_table_volley", &o, h, &q) == 0, "volley_query: %s", volley_last_error());
  rc = volley_query_wait(q);
  volley_query_free(q);
  CHECK(rc != 0 && atomic_load(&s2->errors) == 1 && atomic_load(&s2->releases) == 1,
        "failing query: rc %d, %d errors, %d releases", rc, atomic_load(&s2->errors), atomic_load(&s2->releases));
  volley_close(db);
  t_free(h);
  t_free(s);
  t_free(s2);
  CHECK(atomic_load(&t_live) == 0, "%ld C allocations left", atomic_load(&t_live));
  CHECK(volley_debug_live_allocations() == 0, "%lld C allocations of libvolley left",
        (long long)volley_debug_live_allocations());
  printf("ok\n");
  return 0;
}
