/* kt_jmem: where parsed JSON lives.
 *
 * An audit webhook request is ~100 events of ~5 KB; cJSON allocates every
 * node, key and string separately (~650 mallocs per event), and the
 * consumer threads free them again: allocation was a third of the parse
 * and a good share of the consumers' CPU. Here a document is parsed into
 * an arena (64 KB chunks carved from one reserved address range, bump
 * allocated, recycled whole), and the events cut from it hold references
 * to it; the last one to go returns the chunks.
 *
 * Documents are parsed by kt_jparse straight into the arena. Every other
 * cJSON use is unchanged: the free hook installed by kt_jmem_install
 * ignores arena memory, so cJSON_Delete of an arena tree frees only the
 * heap nodes added to it later (and strings too large for a chunk) —
 * arena trees must still be cJSON_Deleted — and the arena goes as a whole
 * with its last reference.
 *
 * Long-lived trees must not stay in an arena (a 5 KB body would pin a
 * request's chunks): kt_jmem_compact copies a tree into one block. */
#ifndef KT_JMEM_H
#define KT_JMEM_H
#include <stddef.h>

#include <cjson/cJSON.h>

struct kt_jarena;

/* Installs the cJSON free hook and reserves the arenas' address range.
 * Call once, before any thread uses cJSON. Without it kt_jmem_parse builds
 * heap trees and kt_jmem_arena_of is always NULL. 0 or -ENOMEM. */
int kt_jmem_install(void);

/* Parses (kt_jparse) into a fresh arena, which the returned document
 * holds one reference to (released with kt_jmem_unref(kt_jmem_arena_of(
 * root)) after cJSON_Delete(root)); before kt_jmem_install, onto the heap.
 * NULL on a parse error, with the offset of the offending byte in *err_at. */
cJSON *kt_jmem_parse(const char *buf, size_t len, size_t *err_at);

/* The arena holding p, or NULL for heap memory. */
struct kt_jarena *kt_jmem_arena_of(const void *p);
/* Both accept NULL. The last unref returns the arena's chunks. */
void kt_jmem_ref(struct kt_jarena *a);
void kt_jmem_unref(struct kt_jarena *a);

/* A deep copy of t in one heap block (the root is the block: release it
 * with free(), never cJSON_Delete). Nodes are laid out in document order,
 * which keeps a walk over a cold tree sequential in memory. *bytes gets
 * the block's size; *heap (if not NULL) is 0 when every node and string
 * of t is arena memory, so that cJSON_Delete(t) would free nothing and can
 * be skipped. NULL on ENOMEM. */
cJSON *kt_jmem_compact(const cJSON *t, size_t *bytes, int *heap);

struct kt_jmem_stats {
  size_t arenas;     /* live */
  size_t bytes_used; /* chunks held by live arenas */
  size_t bytes_free; /* chunks recycled, kept for reuse */
  size_t fallbacks;  /* chunks refused: the range was used up */
};
void kt_jmem_stats(struct kt_jmem_stats *out);

#endif
