// Shared helpers of the C test programs: a counting allocator for every
// structure the C side allocates, checks, and the metadata encoding.
#ifndef CPROG_COMMON_H
#define CPROG_COMMON_H

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "volley/volley.h"

static atomic_long t_live;  // C allocations not yet freed

static void* t_malloc(size_t n) {
  void* p = calloc(1, n);
  if (p == NULL) {
    fprintf(stderr, "FAIL: out of memory\n");
    exit(2);
  }
  atomic_fetch_add(&t_live, 1);
  return p;
}

static void t_free(void* p) {
  if (p == NULL) return;
  atomic_fetch_sub(&t_live, 1);
  free(p);
}

#define CHECK(cond, ...)                                             \
  do {                                                               \
    if (!(cond)) {                                                   \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                  \
      fprintf(stderr, "\n");                                         \
      exit(1);                                                       \
    }                                                                \
  } while (0)

// md_find looks key up in encoded metadata; returns the pair count (-1 for
// NULL) and sets *val/*vlen when found (vlen -1 when not).
__attribute__((unused)) static int md_find(const char* md, const char* key, const char** val, int32_t* vlen) {
  *vlen = -1;
  if (md == NULL) return -1;
  int32_t n, kl, vl;
  memcpy(&n, md, 4);
  const char* p = md + 4;
  for (int32_t i = 0; i < n; i++) {
    memcpy(&kl, p, 4);
    p += 4;
    const char* k = p;
    p += kl;
    memcpy(&vl, p, 4);
    p += 4;
    if ((size_t)kl == strlen(key) && memcmp(k, key, (size_t)kl) == 0) {
      *val = p;
      *vlen = vl;
    }
    p += vl;
  }
  return n;
}

// md_len is the binary length of an encoded block.
__attribute__((unused)) static int64_t md_len(const char* md) {
  if (md == NULL) return 0;
  int32_t n, l;
  memcpy(&n, md, 4);
  int64_t off = 4;
  for (int32_t i = 0; i < 2 * n; i++) {
    memcpy(&l, md + off, 4);
    off += 4 + l;
  }
  return off;
}

// md_build encodes pairs (keys/values with explicit lengths) into t_malloc
// memory.
__attribute__((unused)) static char* md_build(int n, const char** keys, const int32_t* klens, const char** vals,
                      const int32_t* vlens, int64_t* len) {
  int64_t total = 4;
  for (int i = 0; i < n; i++) total += 8 + klens[i] + vlens[i];
  char* md = t_malloc((size_t)total);
  int32_t cnt = n;
  memcpy(md, &cnt, 4);
  char* p = md + 4;
  for (int i = 0; i < n; i++) {
    memcpy(p, &klens[i], 4);
    p += 4;
    memcpy(p, keys[i], (size_t)klens[i]);
    p += klens[i];
    memcpy(p, &vlens[i], 4);
    p += 4;
    memcpy(p, vals[i], (size_t)vlens[i]);
    p += vlens[i];
  }
  *len = total;
  return md;
}

#endif
