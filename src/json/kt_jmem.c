/* kt_jmem: see the header.
 *
 * The range is reserved once (MAP_NORESERVE: pages are committed when
 * first touched), so "is this pointer arena memory" is one comparison and
 * the arena of a pointer is the header of its 64 KB-aligned chunk. When
 * the range is used up, allocations fall back to the heap: slower, never
 * wrong. Released chunks are poisoned for AddressSanitizer and valgrind,
 * so a use after the last unref is reported as it would be for free(). */
#include "json/kt_jmem.h"
#include "json/kt_jparse.h"
#include "core/kt_time.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <valgrind/memcheck.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define POISON(p, n) VALGRIND_MAKE_MEM_NOACCESS(p, n)
#define UNPOISON(p, n) VALGRIND_MAKE_MEM_UNDEFINED(p, n)
#endif

#define CHUNK_SHIFT 16
#define CHUNK ((size_t)1 << CHUNK_SHIFT)
#define BIG (CHUNK / 4)      /* larger allocations go to the heap */
#define RANGE_CHUNKS 16384   /* 1 GiB of address space */
#define WARM_KEEP 64         /* free chunks always kept resident (4 MB) */
#define TRIM_US 1000000      /* free chunks idle this long go back */

struct chunk {
  struct kt_jarena *owner;
  struct chunk *next;
};

struct kt_jarena {
  atomic_uint refs;
  struct chunk *chunks; /* newest first; the last one holds this struct */
  char *cur, *end;
};

static char *g_base;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static size_t g_fresh;          /* chunks never used yet start here */
/* Recycled chunks: warm ones (pages resident) are reused first; cold ones
 * had their pages returned to the kernel. */
static struct chunk *g_warm, *g_cold;
static size_t g_nwarm, g_arenas, g_used, g_fallbacks;
static size_t g_warm_low;  /* fewest warm chunks since the last trim */
static int64_t g_trimmed_us;

static int in_range(const void *p)
{
  return g_base && (uintptr_t)p - (uintptr_t)g_base < RANGE_CHUNKS * CHUNK;
}

static struct chunk *chunk_get(struct kt_jarena *owner)
{
  struct chunk *c = NULL;
  pthread_mutex_lock(&g_mu);
  if (g_warm) {
    c = g_warm;
    g_warm = c->next;
    if (--g_nwarm < g_warm_low)
      g_warm_low = g_nwarm;
  } else if (g_cold) {
    c = g_cold;
    g_cold = c->next;
  } else if (g_fresh < RANGE_CHUNKS) {
    c = (struct chunk *)(g_base + g_fresh++ * CHUNK);
  } else {
    g_fallbacks++;
  }
  if (c)
    g_used++;
  pthread_mutex_unlock(&g_mu);
  if (c) {
    UNPOISON(c + 1, CHUNK - sizeof *c);
    c->owner = owner;
    c->next = NULL;
  }
  return c;
}

/* Warm chunks that stayed unused for a whole TRIM_US (beyond WARM_KEEP)
 * go cold: their pages back to the kernel (checked as chunks are released:
 * an idle process keeps its last peak until traffic resumes). Trimming at every release
 * instead made the next burst fault them all in again, and each madvise
 * costs a TLB shootdown on every core. Called with g_mu held. */
static struct chunk *take_idle(void)
{
  int64_t now = kt_mono_us();
  if (now - g_trimmed_us < TRIM_US)
    return NULL;
  size_t n = g_warm_low > WARM_KEEP ? g_warm_low - WARM_KEEP : 0;
  struct chunk *list = NULL;
  while (n-- && g_warm) {
    struct chunk *c = g_warm;
    g_warm = c->next;
    g_nwarm--;
    c->next = list;
    list = c;
  }
  g_warm_low = g_nwarm;
  g_trimmed_us = now;
  return list;
}

/* The header stays readable: it links the free lists. */
static void chunk_put(struct chunk *c)
{
  POISON(c + 1, CHUNK - sizeof *c);
  pthread_mutex_lock(&g_mu);
  c->next = g_warm;
  g_warm = c;
  g_nwarm++;
  g_used--;
  struct chunk *idle = take_idle();
  pthread_mutex_unlock(&g_mu);
  while (idle) { /* outside the lock: a syscall each */
    struct chunk *next = idle->next;
    madvise(idle, CHUNK, MADV_DONTNEED);
    pthread_mutex_lock(&g_mu);
    idle->next = g_cold;
    g_cold = idle;
    pthread_mutex_unlock(&g_mu);
    idle = next;
  }
}

/* kt_jparse's allocator: bump allocation in the arena. Large strings go
 * to the heap, where cJSON_Delete frees them like any heap node. */
static void *arena_alloc(void *ud, size_t n)
{
  struct kt_jarena *a = ud;
  if (n > BIG)
    return malloc(n);
  n = (n + 7) & ~(size_t)7;
  if ((size_t)(a->end - a->cur) < n) {
    struct chunk *c = chunk_get(a);
    if (!c)
      return malloc(n);
    c->next = a->chunks;
    a->chunks = c;
    a->cur = (char *)(c + 1);
    a->end = (char *)c + CHUNK;
  }
  void *p = a->cur;
  a->cur += n;
  return p;
}

static void *heap_alloc(void *ud, size_t n)
{
  return cJSON_malloc(n);
}

static void ja_free(void *p)
{
  if (!in_range(p))
    free(p);
}

int kt_jmem_install(void)
{
  if (g_base)
    return 0;
  void *m = mmap(NULL, RANGE_CHUNKS * CHUNK + CHUNK, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED)
    return -ENOMEM;
  /* One spare chunk of slack so the range can start chunk-aligned. */
  uintptr_t b = ((uintptr_t)m + CHUNK - 1) & ~(uintptr_t)(CHUNK - 1);
  g_base = (char *)b;
  cJSON_Hooks h = {malloc, ja_free};
  cJSON_InitHooks(&h);
  return 0;
}

static struct kt_jarena *arena_new(void)
{
  struct chunk *c = chunk_get(NULL);
  if (!c)
    return NULL;
  struct kt_jarena *a = (struct kt_jarena *)(c + 1);
  c->owner = a;
  atomic_init(&a->refs, 1);
  a->chunks = c;
  a->cur = (char *)(a + 1);
  a->end = (char *)c + CHUNK;
  pthread_mutex_lock(&g_mu);
  g_arenas++;
  pthread_mutex_unlock(&g_mu);
  return a;
}

cJSON *kt_jmem_parse(const char *buf, size_t len, size_t *err_at)
{
  struct kt_jarena *a = g_base ? arena_new() : NULL;
  cJSON *root = a ? kt_jparse(buf, len, arena_alloc, a, err_at)
                  : kt_jparse(buf, len, heap_alloc, NULL, err_at);
  if (!root)
    kt_jmem_unref(a);
  return root;
}

struct kt_jarena *kt_jmem_arena_of(const void *p)
{
  if (!in_range(p))
    return NULL;
  return ((struct chunk *)((uintptr_t)p & ~(uintptr_t)(CHUNK - 1)))->owner;
}

void kt_jmem_ref(struct kt_jarena *a)
{
  if (a)
    atomic_fetch_add_explicit(&a->refs, 1, memory_order_relaxed);
}

void kt_jmem_unref(struct kt_jarena *a)
{
  if (!a || atomic_fetch_sub_explicit(&a->refs, 1, memory_order_acq_rel) != 1)
    return;
  struct chunk *c = a->chunks;
  while (c) { /* the struct lives in the last chunk: read next first */
    struct chunk *next = c->next;
    chunk_put(c);
    c = next;
  }
  pthread_mutex_lock(&g_mu);
  g_arenas--;
  pthread_mutex_unlock(&g_mu);
}

/* ---- compact copies ------------------------------------------------- */

static size_t align8(size_t n)
{
  return (n + 7) & ~(size_t)7;
}

/* The sizes (strlen + 1) of the strings of a tree in document order:
 * measured once by tree_size, used again by copy_list (the copy walks in
 * the same order); past the buffer's end, measured again. */
struct lens {
  uint32_t v[1024];
  size_t n, at;
};

static size_t measure(struct lens *l, const char *s)
{
  if (!s)
    return 0;
  size_t n = strlen(s) + 1;
  if (l->n < sizeof l->v / sizeof l->v[0])
    l->v[l->n++] = (uint32_t)n;
  else
    l->n++; /* counted, not kept */
  return n;
}

/* Bytes of the copy; *heap set when a node or string is heap memory. */
static size_t tree_size(const cJSON *t, int *heap, struct lens *l)
{
  size_t n = 0;
  for (; t; t = t->next) {
    n += align8(sizeof *t) + align8(measure(l, t->string)) +
         align8(measure(l, t->valuestring));
    *heap |= !in_range(t) || (t->string && !in_range(t->string)) ||
             (t->valuestring && !in_range(t->valuestring));
    if (t->child)
      n += tree_size(t->child, heap, l);
  }
  return n;
}

static char *copy_str(char **p, const char *s, struct lens *l)
{
  if (!s)
    return NULL;
  size_t n = l->at < sizeof l->v / sizeof l->v[0] ? l->v[l->at] : strlen(s) + 1;
  l->at++;
  char *d = memcpy(*p, s, n);
  *p += align8(n);
  return d;
}

/* Copies the sibling list starting at t; returns its first node. */
static cJSON *copy_list(const cJSON *t, char **p, struct lens *l)
{
  cJSON *first = NULL, *prev = NULL;
  for (; t; t = t->next) {
    cJSON *n = (cJSON *)*p;
    *p += align8(sizeof *n);
    *n = *t;
    n->type &= ~(cJSON_IsReference | cJSON_StringIsConst);
    n->string = copy_str(p, t->string, l);
    n->valuestring = copy_str(p, t->valuestring, l);
    n->next = NULL;
    n->prev = prev;
    n->child = t->child ? copy_list(t->child, p, l) : NULL;
    if (prev)
      prev->next = n;
    else
      first = n;
    prev = n;
  }
  if (first)
    first->prev = prev; /* cJSON keeps the tail in the head's prev */
  return first;
}

cJSON *kt_jmem_compact(const cJSON *t, size_t *bytes, int *heap)
{
  int h = 0;
  if (heap)
    *heap = 1;
  if (!t)
    return NULL;
  /* A root alone: its siblings and its key in a parent are not part of
   * the tree. */
  cJSON root = *t;
  root.next = root.prev = NULL;
  root.string = NULL;
  /* The root is copied on the stack: its own memory is judged apart. */
  struct lens l;
  l.n = l.at = 0;
  size_t n = align8(sizeof root) + align8(measure(&l, root.valuestring)) +
             (root.child ? tree_size(root.child, &h, &l) : 0);
  h |= !in_range(t) || (t->string && !in_range(t->string)) ||
       (t->valuestring && !in_range(t->valuestring));
  char *block = malloc(n), *p = block;
  if (!block)
    return NULL;
  cJSON *c = copy_list(&root, &p, &l);
  c->prev = NULL;
  if (bytes)
    *bytes = n;
  if (heap)
    *heap = h;
  return c;
}

void kt_jmem_stats(struct kt_jmem_stats *out)
{
  pthread_mutex_lock(&g_mu);
  out->arenas = g_arenas;
  out->bytes_used = g_used * CHUNK;
  out->bytes_free = g_nwarm * CHUNK; /* resident; cold chunks are not */
  out->fallbacks = g_fallbacks;
  pthread_mutex_unlock(&g_mu);
}
