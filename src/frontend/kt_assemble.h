/* kt_assemble: builds the trace shown for one object (behaviour spec
 * §2.4-§2.6): the object's stored traces across windows merged into one,
 * its links followed as the display mode's selector admits (within a
 * budget of fetched objects), linked objects attached under their parents
 * (owner links through a virtual `children` span), clipped to the time
 * range and transformed by the mode. */
#ifndef KT_ASSEMBLE_H
#define KT_ASSEMBLE_H
#include <stdint.h>

#include "frontend/kt_modes.h"
#include "frontend/kt_tree.h"

struct kt_store;

struct kt_objkey {
  char cluster[64], group[128], resource[128], ns[256], name[256];
};

/* Parses "cluster/group/resource/namespace/name". 0 or -EINVAL. */
int kt_objkey_parse(const char *s, struct kt_objkey *k);
void kt_objkey_format(const struct kt_objkey *k, char *buf, size_t len);

struct kt_assemble_opts {
  int64_t window_us;   /* the aggregator's span TTL (30 min) */
  int follow_limit;    /* linked objects fetched at most */
};

/* Fills out (initialised by the caller) with the transformed trace of
 * key over [start, end] in mode m. Returns 0, -ENOENT when the object has
 * no trace in range, or -ENOMEM. */
int kt_assemble(struct kt_store *st, const struct kt_assemble_opts *o,
                const struct kt_objkey *key, int64_t start, int64_t end,
                const struct kt_mode *m, struct kt_tree *out);

#endif
