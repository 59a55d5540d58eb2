// The public C API of volley.h, with its const-qualified prototypes, as
// one-line wrappers over the Go exports (cgo writes them without const).
#include "volley/volley.h"
#include "_cgo_export.h"

int volley_open(const char* driver, const char* dsn, volley_db** out) {
  return vgo_open((char*)driver, (char*)dsn, out);
}
void volley_close(volley_db* db) { vgo_close(db); }
int volley_query(volley_db* db, const char* sql, const volley_query_options* opts,
                 struct ArrowAsyncDeviceStreamHandler* handler, struct volley_query** out) {
  return vgo_query(db, (char*)sql, (volley_query_options*)opts, handler, out);
}
int volley_query_cancel(struct volley_query* q) { return vgo_query_cancel(q); }
int volley_query_wait(struct volley_query* q) { return vgo_query_wait(q); }
void volley_query_free(struct volley_query* q) { vgo_query_free(q); }
char* volley_devices_json(void) { return vgo_devices_json(); }
void volley_free(void* p) { vgo_free(p); }
const char* volley_last_error(void) { return vgo_last_error(); }
int volley_produce_demo(int64_t batches, int64_t rows,
                        struct ArrowAsyncDeviceStreamHandler* handler) {
  return vgo_produce_demo(batches, rows, handler);
}
int volley_collector_new(const volley_collector_options* opts, volley_collector** out,
                         struct ArrowAsyncDeviceStreamHandler** handler) {
  return vgo_collector_new((volley_collector_options*)opts, out, handler);
}
int volley_collector_wait(volley_collector* c, volley_collect_result* out) {
  return vgo_collector_wait(c, out);
}
void volley_collector_free(volley_collector* c) { vgo_collector_free(c); }
int64_t volley_debug_live_allocations(void) { return vgo_debug_live_allocations(); }
int volley_produce_demo_on(int64_t batches, int64_t rows, const char* device, int simulated,
                           struct ArrowAsyncDeviceStreamHandler* handler) {
  return vgo_produce_demo_on(batches, rows, (char*)device, simulated, handler);
}
