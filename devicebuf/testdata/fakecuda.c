// A fake libcuda.so.1 for devicebuf's tests: the driver API subset Volley
// uses, implemented over host memory, with checks that every call runs with
// a context pushed on the calling thread and counters the tests read back
// through fake_stat. Built by the tests with: gcc -shared -fPIC.
// -DINIT_RESULT=N makes cuInit return N.
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef INIT_RESULT
#define INIT_RESULT 0
#endif

typedef int CUresult;
typedef unsigned long long CUdeviceptr;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static __thread int depth;       // contexts pushed on this thread
static long stats[16];           // see enum below
static int fail_sync;            // result cuEventSynchronize returns once set
static long long limit = 1LL << 30;
enum { S_ALLOCATED, S_PINNED, S_PINS, S_COPIES, S_EVENTS, S_STREAMS, S_RETAINS, S_NOCTX, S_BADPOP, S_DEVALLOCS };

static void add(int which, long n) { pthread_mutex_lock(&mu); stats[which] += n; pthread_mutex_unlock(&mu); }
long fake_stat(int which) { pthread_mutex_lock(&mu); long v = stats[which]; pthread_mutex_unlock(&mu); return v; }
void fake_fail_sync(int code) { fail_sync = code; }

#define NEEDCTX() do { if (depth <= 0) { add(S_NOCTX, 1); return 201; } } while (0)

// Allocations, for sizes and cuPointerGetAttribute.
#define MAXA 65536
static struct { void *p; size_t n; } allocs[MAXA];

CUresult cuInit(unsigned int flags) { return INIT_RESULT; }
CUresult cuGetErrorName(CUresult e, const char **s) {
  switch (e) {
  case 0: *s = "CUDA_SUCCESS"; return 0;
  case 2: *s = "CUDA_ERROR_OUT_OF_MEMORY"; return 0;
  case 100: *s = "CUDA_ERROR_NO_DEVICE"; return 0;
  case 201: *s = "CUDA_ERROR_INVALID_CONTEXT"; return 0;
  case 700: *s = "CUDA_ERROR_ILLEGAL_ADDRESS"; return 0;
  case 719: *s = "CUDA_ERROR_LAUNCH_FAILED"; return 0;
  }
  *s = 0;
  return 1;
}
CUresult cuDriverGetVersion(int *v) { *v = 13000; return 0; }
CUresult cuDeviceGetCount(int *n) { *n = 1; return 0; }
CUresult cuDeviceGet(int *d, int ordinal) { if (ordinal != 0) return 101; *d = 0; return 0; }
CUresult cuDeviceGetName(char *name, int len, int dev) { strncpy(name, "Fake CUDA Device", len); return 0; }
CUresult cuDeviceTotalMem_v2(size_t *b, int dev) { *b = (size_t)limit; return 0; }
CUresult cuDeviceGetAttribute(int *v, int attr, int dev) { *v = attr == 41 ? 1 : attr == 40 ? 2 : 0; return 0; }
CUresult cuDevicePrimaryCtxRetain(void **ctx, int dev) { *ctx = (void *)0x1234; add(S_RETAINS, 1); return 0; }
CUresult cuDevicePrimaryCtxRelease_v2(int dev) { add(S_RETAINS, -1); return 0; }
CUresult cuCtxPushCurrent_v2(void *ctx) { if (ctx != (void *)0x1234) return 201; depth++; return 0; }
CUresult cuCtxPopCurrent_v2(void **ctx) { if (depth <= 0) { add(S_BADPOP, 1); return 201; } depth--; if (ctx) *ctx = (void *)0x1234; return 0; }
CUresult cuMemGetInfo_v2(size_t *free, size_t *total) { NEEDCTX(); *total = (size_t)limit; *free = (size_t)(limit - fake_stat(S_ALLOCATED)); return 0; }
CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t n) {
  NEEDCTX();
  if (fake_stat(S_ALLOCATED) + (long)n > limit) return 2;
  void *m = malloc(n);
  pthread_mutex_lock(&mu);
  for (int i = 0; i < MAXA; i++) if (!allocs[i].p) { allocs[i].p = m; allocs[i].n = n; break; }
  stats[S_ALLOCATED] += n; stats[S_DEVALLOCS]++;
  pthread_mutex_unlock(&mu);
  memset(m, 0xDE, n);
  *p = (CUdeviceptr)(uintptr_t)m;
  return 0;
}
CUresult cuMemFree_v2(CUdeviceptr p) {
  NEEDCTX();
  pthread_mutex_lock(&mu);
  for (int i = 0; i < MAXA; i++) if (allocs[i].p == (void *)(uintptr_t)p) {
    stats[S_ALLOCATED] -= allocs[i].n; allocs[i].p = 0;
    pthread_mutex_unlock(&mu); free((void *)(uintptr_t)p); return 0;
  }
  pthread_mutex_unlock(&mu);
  return 1;
}
CUresult cuMemHostAlloc(void **p, size_t n, unsigned int flags) { NEEDCTX(); *p = calloc(1, n + 8); *(size_t *)*p = n; *p = (char *)*p + 8; add(S_PINNED, n); add(S_PINS, 1); return 0; }
CUresult cuMemFreeHost(void *p) { NEEDCTX(); add(S_PINNED, -(long)*(size_t *)((char *)p - 8)); free((char *)p - 8); return 0; }
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t n, void *stream) { NEEDCTX(); memcpy((void *)(uintptr_t)dst, src, n); add(S_COPIES, 1); return 0; }
CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t n) { NEEDCTX(); memcpy(dst, (void *)(uintptr_t)src, n); return 0; }
CUresult cuStreamCreate(void **s, unsigned int flags) { NEEDCTX(); *s = malloc(1); add(S_STREAMS, 1); return 0; }
CUresult cuStreamDestroy_v2(void *s) { NEEDCTX(); free(s); add(S_STREAMS, -1); return 0; }
CUresult cuEventCreate(void **e, unsigned int flags) { NEEDCTX(); *e = malloc(1); add(S_EVENTS, 1); return 0; }
CUresult cuEventRecord(void *e, void *s) { NEEDCTX(); return 0; }
CUresult cuEventSynchronize(void *e) { NEEDCTX(); return fail_sync; }
CUresult cuEventDestroy_v2(void *e) { NEEDCTX(); free(e); add(S_EVENTS, -1); return 0; }
CUresult cuPointerGetAttribute(void *data, int attr, CUdeviceptr p) {
  NEEDCTX();
  if (attr != 2) return 1;
  unsigned int t = 1;
  pthread_mutex_lock(&mu);
  for (int i = 0; i < MAXA; i++)
    if (allocs[i].p && (char *)(uintptr_t)p >= (char *)allocs[i].p && (char *)(uintptr_t)p < (char *)allocs[i].p + allocs[i].n) t = 2;
  pthread_mutex_unlock(&mu);
  *(unsigned int *)data = t;
  return 0;
}
