#include <errno.h>
#include <string.h>

#include "bridge.h"
#include "_cgo_export.h"

// Every C allocation the bridge makes for structures it hands to C goes
// through these, so tests can assert that none is left.
static int64_t vl_live;

void* vl_malloc(size_t n) {
  void* p = malloc(n > 0 ? n : 1);
  if (p != NULL) __atomic_add_fetch(&vl_live, 1, __ATOMIC_RELAXED);
  return p;
}

void* vl_calloc(size_t count, size_t n) {
  void* p = calloc(count > 0 ? count : 1, n > 0 ? n : 1);
  if (p != NULL) __atomic_add_fetch(&vl_live, 1, __ATOMIC_RELAXED);
  return p;
}

void vl_free(void* p) {
  if (p == NULL) return;
  __atomic_sub_fetch(&vl_live, 1, __ATOMIC_RELAXED);
  free(p);
}

int64_t vl_live_allocations(void) { return __atomic_load_n(&vl_live, __ATOMIC_RELAXED); }

// Requests made with n > 0 on the thread that is inside one of Volley's
// calls of on_schema/on_next_task, for the producer of that call, are summed
// here and handed to Go when the call returns: one crossing into Go saved
// per re-entrant request (R2). Other requests go to Go at once.
static __thread struct ArrowAsyncProducer* vl_cb_producer;
static __thread int64_t vl_cb_pending;

struct vl_cb_saved {
  struct ArrowAsyncProducer* producer;
  int64_t pending;
};

static struct vl_cb_saved vl_cb_enter(struct ArrowAsyncProducer* p) {
  struct vl_cb_saved s = {vl_cb_producer, vl_cb_pending};
  vl_cb_producer = p;
  vl_cb_pending = 0;
  return s;
}

static int64_t vl_cb_leave(struct vl_cb_saved s) {
  int64_t n = vl_cb_pending;
  vl_cb_producer = s.producer;
  vl_cb_pending = s.pending;
  return n;
}

int vl_call_on_schema(struct ArrowAsyncDeviceStreamHandler* h, struct ArrowSchema* s,
                      struct ArrowAsyncProducer* p, int64_t* pending) {
  struct vl_cb_saved saved = vl_cb_enter(p);
  int rc = h->on_schema(h, s);
  *pending = vl_cb_leave(saved);
  return rc;
}

static int vl_task_extract(struct ArrowAsyncTask* t, struct ArrowDeviceArray* out) {
  uintptr_t handle = (uintptr_t)t->private_data;
  if (handle == 0) return EINVAL;  // this copy was already extracted
  t->private_data = NULL;
  if (out != NULL) memset(out, 0, sizeof(*out));
  return goTaskExtract(handle, out);
}

int vl_send_task(struct ArrowAsyncDeviceStreamHandler* h, uintptr_t task, const char* md,
                 struct ArrowAsyncProducer* p, int64_t* pending) {
  // The task struct lives on this C stack for the duration of the call
  // (N4); the consumer copies it by value to keep it.
  struct ArrowAsyncTask t;
  t.extract_data = vl_task_extract;
  t.private_data = (void*)task;
  struct vl_cb_saved saved = vl_cb_enter(p);
  int rc = h->on_next_task(h, &t, md);
  *pending = vl_cb_leave(saved);
  return rc;
}

int vl_send_end(struct ArrowAsyncDeviceStreamHandler* h, const char* md,
                struct ArrowAsyncProducer* p, int64_t* pending) {
  struct vl_cb_saved saved = vl_cb_enter(p);
  int rc = h->on_next_task(h, NULL, md);
  *pending = vl_cb_leave(saved);
  return rc;
}

void vl_call_on_error(struct ArrowAsyncDeviceStreamHandler* h, int code, const char* msg,
                      const char* md) {
  h->on_error(h, code, msg, md);
}

void vl_call_release(struct ArrowAsyncDeviceStreamHandler* h) { h->release(h); }

void vl_call_request(struct ArrowAsyncProducer* p, int64_t n) { p->request(p, n); }

void vl_call_cancel(struct ArrowAsyncProducer* p) { p->cancel(p); }

int vl_call_extract(uintptr_t fn, uintptr_t priv, struct ArrowDeviceArray* out) {
  struct ArrowAsyncTask t;
  t.extract_data = (int (*)(struct ArrowAsyncTask*, struct ArrowDeviceArray*))fn;
  t.private_data = (void*)priv;
  return t.extract_data(&t, out);
}

void vl_schema_release(struct ArrowSchema* s) {
  if (s != NULL && s->release != NULL) s->release(s);
}

void vl_array_release(struct ArrowArray* a) {
  if (a != NULL && a->release != NULL) a->release(a);
}

// ---- producer (Go producer, C consumer) ----

static void vl_producer_request(struct ArrowAsyncProducer* p, int64_t n) {
  if (n > 0 && vl_cb_producer == p) {
    vl_cb_pending = (vl_cb_pending > INT64_MAX - n) ? INT64_MAX : vl_cb_pending + n;
    return;
  }
  goProducerRequest((uintptr_t)p->private_data, n);
}

static void vl_producer_cancel(struct ArrowAsyncProducer* p) {
  goProducerCancel((uintptr_t)p->private_data);
}

struct ArrowAsyncProducer* vl_producer_new(uintptr_t handle) {
  struct ArrowAsyncProducer* p = vl_calloc(1, sizeof(*p));
  if (p == NULL) return NULL;
  p->device_type = ARROW_DEVICE_CPU;
  p->request = vl_producer_request;
  p->cancel = vl_producer_cancel;
  p->additional_metadata = NULL;
  p->private_data = (void*)handle;
  return p;
}

int vl_producer_set_metadata(struct ArrowAsyncProducer* p, const void* md, int64_t len) {
  void* copy = vl_copy(md, len);
  if (copy == NULL) return ENOMEM;
  vl_free((void*)p->additional_metadata);
  p->additional_metadata = copy;
  return 0;
}

void vl_producer_free(struct ArrowAsyncProducer* p) {
  vl_free((void*)p->additional_metadata);
  vl_free(p);
}

// ---- handler (C producer, Go consumer) ----

static int vl_handler_on_schema(struct ArrowAsyncDeviceStreamHandler* h, struct ArrowSchema* s) {
  return goHandlerOnSchema((uintptr_t)h->private_data, h->producer, s);
}

static int vl_handler_on_next_task(struct ArrowAsyncDeviceStreamHandler* h,
                                   struct ArrowAsyncTask* t, const char* md) {
  if (t == NULL) return goHandlerOnNextTask((uintptr_t)h->private_data, 0, 0, (char*)md);
  return goHandlerOnNextTask((uintptr_t)h->private_data, (uintptr_t)t->extract_data,
                             (uintptr_t)t->private_data, (char*)md);
}

static void vl_handler_on_error(struct ArrowAsyncDeviceStreamHandler* h, int code,
                                const char* msg, const char* md) {
  goHandlerOnError((uintptr_t)h->private_data, code, (char*)msg, (char*)md);
}

static void vl_handler_release(struct ArrowAsyncDeviceStreamHandler* h) {
  uintptr_t handle = (uintptr_t)h->private_data;
  h->release = NULL;
  h->private_data = NULL;
  goHandlerRelease(handle);
  vl_free(h);
}

struct ArrowAsyncDeviceStreamHandler* vl_handler_new(uintptr_t handle) {
  struct ArrowAsyncDeviceStreamHandler* h = vl_calloc(1, sizeof(*h));
  if (h == NULL) return NULL;
  h->on_schema = vl_handler_on_schema;
  h->on_next_task = vl_handler_on_next_task;
  h->on_error = vl_handler_on_error;
  h->release = vl_handler_release;
  h->producer = NULL;
  h->private_data = (void*)handle;
  return h;
}

// ---- array export ----

// A CPU record exported by arrow/cdata, wrapped so that the top-level
// release also releases the Go DeviceBatch.
struct vl_wrapped {
  struct ArrowArray inner;
  uintptr_t batch;
};

struct vl_wrapped* vl_wrap_new(void) { return vl_calloc(1, sizeof(struct vl_wrapped)); }

struct ArrowArray* vl_wrap_inner(struct vl_wrapped* w) { return &w->inner; }

static void vl_wrap_release(struct ArrowArray* a) {
  struct vl_wrapped* w = a->private_data;
  // The consumer may have moved children out through the shared children
  // array: the inner release sees that, as it shares the same pointers.
  if (w->inner.release != NULL) w->inner.release(&w->inner);
  uintptr_t batch = w->batch;
  vl_free(w);
  a->release = NULL;
  a->private_data = NULL;
  goBatchRelease(batch);
}

void vl_wrap_finish(struct ArrowArray* out, struct vl_wrapped* w, uintptr_t batch) {
  w->batch = batch;
  *out = w->inner;
  out->release = vl_wrap_release;
  out->private_data = w;
}

// Nodes of a device array tree: the structs are CPU memory (D1) that this
// file allocates; buffers are device addresses that it never touches. The
// parent owns its children's and dictionary's structs; a node's release frees
// what the node owns and, for the top-level node, releases the Go batch.
static void vl_node_release(struct ArrowArray* a) {
  for (int64_t i = 0; i < a->n_children; i++) {
    struct ArrowArray* c = a->children[i];
    if (c == NULL) continue;
    if (c->release != NULL) c->release(c);
    vl_free(c);
  }
  if (a->dictionary != NULL) {
    if (a->dictionary->release != NULL) a->dictionary->release(a->dictionary);
    vl_free(a->dictionary);
  }
  vl_free(a->children);
  vl_free((void*)a->buffers);
  uintptr_t* top = a->private_data;
  a->release = NULL;
  a->private_data = NULL;
  if (top != NULL) {
    uintptr_t batch = *top;
    vl_free(top);
    goBatchRelease(batch);
  }
}

int vl_node_init(struct ArrowArray* a, int64_t n_buffers, int64_t n_children, int dict) {
  memset(a, 0, sizeof(*a));
  a->release = vl_node_release;
  if (n_buffers > 0) {
    a->buffers = vl_calloc((size_t)n_buffers, sizeof(void*));
    if (a->buffers == NULL) return ENOMEM;
    a->n_buffers = n_buffers;
  }
  if (n_children > 0) {
    a->children = vl_calloc((size_t)n_children, sizeof(struct ArrowArray*));
    if (a->children == NULL) return ENOMEM;
    a->n_children = n_children;
    for (int64_t i = 0; i < n_children; i++) {
      a->children[i] = vl_calloc(1, sizeof(struct ArrowArray));
      if (a->children[i] == NULL) return ENOMEM;
    }
  }
  if (dict) {
    a->dictionary = vl_calloc(1, sizeof(struct ArrowArray));
    if (a->dictionary == NULL) return ENOMEM;
  }
  return 0;
}

void vl_node_set_buffer(struct ArrowArray* a, int64_t i, uintptr_t addr) {
  a->buffers[i] = (const void*)addr;
}

int vl_node_set_top(struct ArrowArray* a, uintptr_t batch) {
  uintptr_t* top = vl_malloc(sizeof(uintptr_t));
  if (top == NULL) return ENOMEM;
  *top = batch;
  a->private_data = top;
  return 0;
}

// ---- metadata ----

int64_t vl_metadata_len(const char* md, int64_t limit) {
  if (md == NULL) return 0;
  if (limit < 4) return -1;
  int32_t count;
  memcpy(&count, md, 4);
  if (count < 0) return -1;
  int64_t off = 4;
  for (int32_t i = 0; i < count; i++) {
    for (int kv = 0; kv < 2; kv++) {
      if (limit - off < 4) return -1;
      int32_t n;
      memcpy(&n, md + off, 4);
      off += 4;
      if (n < 0 || (int64_t)n > limit - off) return -1;
      off += n;
    }
  }
  return off;
}

void* vl_copy(const void* src, int64_t len) {
  void* p = vl_malloc(len > 0 ? (size_t)len : 1);
  if (p != NULL && len > 0) memcpy(p, src, (size_t)len);
  return p;
}

// ---- C API helpers ----

void* vl_box_new(uintptr_t h) {
  uintptr_t* b = vl_malloc(sizeof(uintptr_t));
  if (b != NULL) *b = h;
  return b;
}

uintptr_t vl_box_get(void* box) { return box == NULL ? 0 : *(uintptr_t*)box; }

void vl_box_free(void* box) { vl_free(box); }

static __thread char* vl_err;

void vl_set_last_error(const char* msg) {
  free(vl_err);
  vl_err = msg == NULL ? NULL : strdup(msg);
}

const char* vl_last_error(void) { return vl_err == NULL ? "" : vl_err; }

// ---- block export ----

const uint64_t vl_zero_region[8] = {0};

void* vl_block_new(int64_t nodes, int64_t slots) {
  size_t n = sizeof(struct vl_block) + (size_t)nodes * sizeof(struct ArrowArray) +
             (size_t)slots * sizeof(void*);
  return vl_calloc(1, n);
}

void vl_block_node_release(struct ArrowArray* a) {
  struct vl_block* b = a->private_data;
  for (int64_t i = 0; i < a->n_children; i++) {
    struct ArrowArray* c = a->children[i];
    if (c->release != NULL) c->release(c);
  }
  if (a->dictionary != NULL && a->dictionary->release != NULL) a->dictionary->release(a->dictionary);
  a->release = NULL;
  a->private_data = NULL;
  if (__atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0) {
    uintptr_t batch = b->batch;
    vl_free(b);
    goBatchRelease(batch);
  }
}
