/* kt_modes: the display modes in force (behaviour spec §2.3) — built from
 * the transform configuration (kt_transform): the shipped one, or a file
 * given with --jaeger-transform-config-file — and the trace-id encoding
 *     ff <8 hex mode> e1e3e7 <16 hex cache key>,
 * so that editing those 8 digits in a URL re-renders a trace in another
 * mode. */
#ifndef KT_MODES_H
#define KT_MODES_H
#include <stddef.h>
#include <stdint.h>

#include "frontend/kt_transform.h"

#define KT_MODE_DEFAULT 0x20000000u

/* Installs the modes of file (NULL or "" = the shipped ones). Call once,
 * before serving. 0, or -EINVAL with a reason in err. */
int kt_modes_install(const char *file, char *err, size_t errlen);
/* All modes, the default first (installs the shipped ones if needed). */
const struct kt_mode *kt_modes(size_t *n);
const struct kt_mode *kt_mode_by_id(uint32_t id);
/* Accepts the name with an optional "* " prefix (as the original). */
const struct kt_mode *kt_mode_by_name(const char *name);
const struct kt_mode *kt_mode_default(void);

/* Trace ids: out needs 33 bytes. */
void kt_mode_trace_id(uint32_t mode, uint64_t key, char out[33]);
/* 0 and mode/key, or -EINVAL if id is not one of ours. */
int kt_mode_parse_trace_id(const char *id, uint32_t *mode, uint64_t *key);

/* The path followed so far from the searched object. */
struct kt_link_path {
  int first; /* direction of the first step: 1 up, -1 down, 0 none */
  int ups, downs;
};

/* May the path take one more step over a link of class cls, upward (up = 1,
 * to the parent) or downward? parent/child are the link's two objects as
 * {cluster, group, resource, namespace, name}. */
int kt_mode_admit(const struct kt_mode *m, const struct kt_link_path *p,
                  const char *const parent[5], const char *const child[5],
                  int up, const char *cls);

#endif
