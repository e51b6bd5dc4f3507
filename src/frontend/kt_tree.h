/* kt_tree: a trace being assembled and transformed for display: the spans
 * of one or more stored traces, merged (behaviour spec §2.6) and rewritten
 * by the transform steps of a display mode (§2.7). Single-threaded; owns
 * its spans. */
#ifndef KT_TREE_H
#define KT_TREE_H
#include <stddef.h>
#include <stdint.h>

#include "frontend/kt_modes.h"
#include "store/kt_span.h"

struct kt_tree {
  struct kt_span **s; /* NULL entries are deleted spans */
  size_t n, cap;
  /* children index, rebuilt by kt_tree_index() */
  int **kids;
  size_t *nkids;
  size_t _nindexed; /* t->n when the index was built */
  int root;
};

void kt_tree_init(struct kt_tree *t);
void kt_tree_free(struct kt_tree *t);
/* Takes ownership of s. 0 or -ENOMEM. */
int kt_tree_add(struct kt_tree *t, struct kt_span *s);
/* Moves every span of src into t (src is left empty). */
int kt_tree_absorb(struct kt_tree *t, struct kt_tree *src);
/* Rebuilds the children index and finds the root (the earliest span
 * without a parent in the tree). Returns the root index or -1. */
int kt_tree_index(struct kt_tree *t);
int kt_tree_find(const struct kt_tree *t, uint64_t span_id);

/* Merges windows of one object: t's root becomes the base, other roots
 * (same object) are folded into it, their children re-parented. */
void kt_tree_merge_roots(struct kt_tree *t);
/* Keeps non-pseudo spans only when start is strictly inside (start, end);
 * stretches object, link and virtual spans to exactly [start, end]. */
void kt_tree_clip(struct kt_tree *t, int64_t start, int64_t end);
/* Applies the display mode's transform steps. */
void kt_tree_transform(struct kt_tree *t, const struct kt_mode *m);

#endif
