/* volley.h: the C API of libvolley (built by `make lib` into
 * .cache/lib/libvolley.so). Queries stream their results into a C
 * ArrowAsyncDeviceStreamHandler (volley/abi.h); the protocol's rules are
 * shared/SPEC.md's.
 *
 * Conventions: functions returning int return 0 on success or an
 * errno-compatible code; on failure volley_last_error() describes the
 * failure of the calling thread's last failed call (thread-local, valid
 * until that thread's next failing call). Strings returned as char* are
 * the caller's to free with volley_free. */
#ifndef VOLLEY_H
#define VOLLEY_H

#include <stdint.h>

#include "volley/abi.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct volley_db volley_db;
/* struct volley_query is the handle of one running query (no typedef: the
 * name is also the function volley_query). */
struct volley_query;
typedef struct volley_collector volley_collector;

/* Per-query options; a zeroed struct (or NULL) means the defaults. */
typedef struct volley_query_options {
  /* Placement hint: NULL or "" or "auto" (automatic), "cpu", "cuda_host:N",
   * "cuda:N". */
  const char* device;
  /* Request window for pull readers (0: default). The C handler paces a
   * volley_query itself through request(n). */
  int64_t window;
  /* Batch size bounds (0: driver default / no row bound). */
  int64_t batch_bytes;
  int64_t batch_rows;
  /* Device types (ARROW_DEVICE_*) the handler accepts, best first; NULL or
   * n_accept == 0 means CPU only. */
  const int32_t* accept;
  int64_t n_accept;
} volley_query_options;

/* Opens a database through a registered driver ("postgres", "adbc", ...). */
int volley_open(const char* driver, const char* dsn, volley_db** out);
/* Closes the database: cancels running queries and waits for their
 * handlers' release. NULL is ignored. */
void volley_close(volley_db* db);

/* Starts sql and returns at once. The result streams into handler, which the
 * caller allocated and filled; it receives exactly one release on every
 * path, also when volley_query fails (then *out is NULL). */
int volley_query(volley_db* db, const char* sql, const volley_query_options* opts,
                 struct ArrowAsyncDeviceStreamHandler* handler, struct volley_query** out);
/* Cancels the query (thread-safe, idempotent). */
int volley_query_cancel(struct volley_query* q);
/* Blocks until the handler's release has returned; returns the stream's
 * outcome (0: clean end of stream, ECANCELED after a cancel, ...). */
int volley_query_wait(struct volley_query* q);
/* Frees the handle; the query, if still running, goes on to its end. */
void volley_query_free(struct volley_query* q);

/* The device inventory as a JSON array; free with volley_free. */
char* volley_devices_json(void);
void volley_free(void* p);
/* The calling thread's last error message ("" if none), C memory owned by
 * the library. */
const char* volley_last_error(void);

/* The number of C allocations the library made for structures it handed to
 * C (handlers, producers, exported arrays, metadata, handles) that are not
 * freed yet: 0 once every stream has been released and every task and array
 * extracted and released. For leak checks in tests. */
int64_t volley_debug_live_allocations(void);

/* Test/demo producer: streams `batches` batches (negative: endless, until
 * cancelled) of `rows` rows each, columns id int64 (0, 1, 2, ... over the
 * stream) and name utf8 ("r<id>"), from an in-process generator into
 * handler. Each task's metadata is {"batch": "<i>"}; the producer's
 * additional_metadata is {"volley.demo": "1\0x"} (a zero byte inside).
 * Blocks until the handler's release has returned; returns 0 on a clean end,
 * ECANCELED after the consumer's cancel, the refusal's code after a refusal,
 * or the error sent through on_error. */
int volley_produce_demo(int64_t batches, int64_t rows,
                        struct ArrowAsyncDeviceStreamHandler* handler);

/* volley_produce_demo with every batch moved onto device ("cpu",
 * "cuda_host:N", "cuda:N") by Volley's device layer: device batches carry
 * device_type/device_id of that device and a sync_event (a CUevent* for
 * CUDA) to wait on before touching the buffers. With simulated != 0 the GPU
 * is Volley's simulated one (device addresses that are not host pointers:
 * never dereference them), for tests without a GPU; otherwise the CUDA
 * driver's. The handler is released on every path. */
int volley_produce_demo_on(int64_t batches, int64_t rows, const char* device, int simulated,
                           struct ArrowAsyncDeviceStreamHandler* handler);

/* Test/demo consumer, for C producers: a Go consumer (async.Reader) that
 * reads the whole stream, checking and summing it. */
typedef struct volley_collector_options {
  int64_t window;       /* tasks requested ahead (0: 4) */
  int64_t cancel_after; /* cancel after this many batches (0: never) */
  int32_t accept_device; /* additional device type to accept (0: CPU only) */
} volley_collector_options;

typedef struct volley_collect_result {
  int64_t batches, rows;
  int64_t sum_first_column; /* sum of column 0 when it is int64 */
  int64_t device_batches;   /* non-CPU batches (counted, not read) */
  int32_t error_code;       /* 0: clean end of stream */
  int64_t error_metadata_bytes; /* binary length of the error's metadata */
  int64_t metadata_pairs;   /* pairs in the producer's additional_metadata */
} volley_collect_result;

/* Creates a collector and its C handler (allocated by the library; the
 * producer's release frees it). */
int volley_collector_new(const volley_collector_options* opts, volley_collector** out,
                         struct ArrowAsyncDeviceStreamHandler** handler);
/* Waits until the stream was released and read; fills *out. */
int volley_collector_wait(volley_collector* c, volley_collect_result* out);
void volley_collector_free(volley_collector* c);

#ifdef __cplusplus
}
#endif

#endif  // VOLLEY_H
