/* kt_diff: the structural JSON diff of kelemetry (behaviour spec §1.7.3):
 * objects compared key by key (keys in byte order), arrays index by index
 * (no reordering detection), anything else by value; one entry per
 * differing leaf or type change, at a path like `spec.replicas`,
 * `metadata.labels["app.kubernetes.io/name"]` or `status.conditions[1]`.
 * Thread-safe, no global state. */
#ifndef KT_DIFF_H
#define KT_DIFF_H
#include <stddef.h>

#include <cjson/cJSON.h>

/* old_v / new_v: borrowed from the two compared trees, which must outlive
 * the list's use; NULL when absent or null. */
struct kt_diff_entry {
  char *path;
  const cJSON *old_v;
  const cJSON *new_v;
};

struct kt_diff_list {
  struct kt_diff_entry *v;
  size_t n, cap;
  size_t limit;  /* max entries kept */
  int truncated; /* more differences existed */
};

/* limit 0 = 10000. */
void kt_diff_list_init(struct kt_diff_list *l, size_t limit);
void kt_diff_list_free(struct kt_diff_list *l);
/* Appends the differences of old_v -> new_v; the entries point into both
 * trees. 0 or -ENOMEM. */
int kt_diff_compare(const cJSON *old_v, const cJSON *new_v,
                    struct kt_diff_list *out);
/* Lines `<path> <old JSON> -> <new JSON>\n` (absent side `null`), plus
 * `... (diff truncated)\n` when truncated. malloc'd; NULL on ENOMEM. */
char *kt_diff_render(const struct kt_diff_list *l);
/* {"diffs":[{"jsonPath":..,"old":..,"new":..}]}; caller cJSON_Deletes. */
cJSON *kt_diff_to_json(const struct kt_diff_list *l);

#endif
