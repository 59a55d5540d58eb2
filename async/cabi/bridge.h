// Internal C side of package cabi: trampolines between the C ABI's function
// pointers and Go. Not part of the public headers.
#ifndef VOLLEY_CABI_BRIDGE_H
#define VOLLEY_CABI_BRIDGE_H

#include <stdint.h>
#include <stdlib.h>
#include "volley/abi.h"

// Counted C allocations (vl_live_allocations: not yet freed).
void* vl_malloc(size_t n);
void* vl_calloc(size_t count, size_t n);
void vl_free(void* p);
int64_t vl_live_allocations(void);

// Calls through a C handler's / producer's / task's function pointers.
// The three calls below also return (in *pending) the demand the consumer
// requested re-entrantly during the call, which Go then forwards.
int vl_call_on_schema(struct ArrowAsyncDeviceStreamHandler* h, struct ArrowSchema* s,
                      struct ArrowAsyncProducer* p, int64_t* pending);
int vl_send_task(struct ArrowAsyncDeviceStreamHandler* h, uintptr_t task, const char* md,
                 struct ArrowAsyncProducer* p, int64_t* pending);
int vl_send_end(struct ArrowAsyncDeviceStreamHandler* h, const char* md,
                struct ArrowAsyncProducer* p, int64_t* pending);
void vl_call_on_error(struct ArrowAsyncDeviceStreamHandler* h, int code, const char* msg,
                      const char* md);
void vl_call_release(struct ArrowAsyncDeviceStreamHandler* h);
void vl_call_request(struct ArrowAsyncProducer* p, int64_t n);
void vl_call_cancel(struct ArrowAsyncProducer* p);
int vl_call_extract(uintptr_t fn, uintptr_t priv, struct ArrowDeviceArray* out);
void vl_schema_release(struct ArrowSchema* s);
void vl_array_release(struct ArrowArray* a);

// The producer struct Volley exports (Go producer, C consumer).
struct ArrowAsyncProducer* vl_producer_new(uintptr_t handle);
int vl_producer_set_metadata(struct ArrowAsyncProducer* p, const void* md, int64_t len);
void vl_producer_free(struct ArrowAsyncProducer* p);

// The handler struct Volley exports (C producer, Go consumer).
struct ArrowAsyncDeviceStreamHandler* vl_handler_new(uintptr_t handle);

// Array export.
struct vl_wrapped* vl_wrap_new(void);
struct ArrowArray* vl_wrap_inner(struct vl_wrapped* w);
void vl_wrap_finish(struct ArrowArray* out, struct vl_wrapped* w, uintptr_t batch);
int vl_node_init(struct ArrowArray* a, int64_t n_buffers, int64_t n_children, int dict);
void vl_node_set_buffer(struct ArrowArray* a, int64_t i, uintptr_t addr);
int vl_node_set_top(struct ArrowArray* a, uintptr_t batch);

// Metadata: length of an encoded block, or -1 when invalid or longer than limit.
int64_t vl_metadata_len(const char* md, int64_t limit);
void* vl_copy(const void* src, int64_t len);


// Boxes: C memory holding a cgo.Handle, for the C API's opaque handles.
void* vl_box_new(uintptr_t h);
uintptr_t vl_box_get(void* box);
void vl_box_free(void* box);

// The calling thread's last error (C memory owned by the library).
void vl_set_last_error(const char* msg);
const char* vl_last_error(void);

// A CPU record batch exported in one C block: every child ArrowArray and
// every buffers/children pointer array of the tree. Each node's release
// drops one reference; the last frees the block and releases the Go batch.
struct vl_block {
  int64_t refs;
  uintptr_t batch;
};
void* vl_block_new(int64_t nodes, int64_t slots);
void vl_block_node_release(struct ArrowArray* a);
extern const uint64_t vl_zero_region[8];

#endif
