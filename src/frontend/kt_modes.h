/* kt_modes: Kelemetry's display modes (behaviour spec §2.3, §2.7). A mode
 * is a 32-bit id: the base view in the high nibble (0 tree, 1 timeline,
 * 2 tracing, 3 grouped) OR'd with at most one link-selector modifier
 * (01 full tree, 02 ancestors, 04 owned objects): 16 modes. The mode rides
 * in every trace id handed out,
 *     ff <8 hex mode> e1e3e7 <16 hex cache key>,
 * so editing those 8 digits in a URL re-renders the trace in another mode. */
#ifndef KT_MODES_H
#define KT_MODES_H
#include <stddef.h>
#include <stdint.h>

enum kt_view { KT_VIEW_TREE, KT_VIEW_TIMELINE, KT_VIEW_TRACING, KT_VIEW_GROUPED };

/* Which links a mode follows from the searched object. */
struct kt_link_selector {
  int up_max, down_max;  /* steps allowed in each direction (0 = none) */
  int no_siblings;       /* every step in the direction of the first */
  const char *cls;       /* required link class, NULL = any */
};

struct kt_mode {
  uint32_t id;
  enum kt_view view;
  char name[64];
  struct kt_link_selector sel;
};

#define KT_MODE_DEFAULT 0x20000000u
#define KT_NMODES 16

/* All modes, the default first. */
const struct kt_mode *kt_modes(size_t *n);
const struct kt_mode *kt_mode_by_id(uint32_t id);
/* Accepts the name with an optional "* " prefix (as the original). */
const struct kt_mode *kt_mode_by_name(const char *name);

/* Trace ids: out needs 33 bytes. */
void kt_mode_trace_id(uint32_t mode, uint64_t key, char out[33]);
/* 0 and mode/key, or -EINVAL if id is not one of ours. */
int kt_mode_parse_trace_id(const char *id, uint32_t *mode, uint64_t *key);

/* Can a path that has made `ups` upward and `downs` downward steps, whose
 * first step went up (first = 1) or down (first = -1, 0 = none yet), take
 * one more step in direction up (1) or down (-1) over a link of class cls? */
int kt_link_admit(const struct kt_link_selector *s, int first, int ups,
                  int downs, int up, const char *cls);

#endif
