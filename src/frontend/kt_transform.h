/* kt_transform: display-mode definitions loaded from the original's
 * transform-config YAML format (behaviour spec §2.7): configs (an id, a
 * name, a list of steps), batches (named step lists), and modifiers that
 * clone every config with a link selector OR'd into its id. The shipped
 * configuration is built in (as YAML, through the same loader); another
 * file can be given with --jaeger-transform-config-file. */
#ifndef KT_TRANSFORM_H
#define KT_TRANSFORM_H
#include <regex.h>
#include <stddef.h>
#include <stdint.h>

/* The original's StringFilter: a string = exact; or one of exact, oneOf,
 * regex, caseInsensitive, with `then: false` (or the older `negate: true`)
 * inverting the result; no filter matches everything. */
struct kt_strfilter {
  enum { KT_SF_ANY, KT_SF_EXACT, KT_SF_ONEOF, KT_SF_REGEX, KT_SF_ICASE } kind;
  char **values;
  size_t nvalues;
  regex_t re;
  int then;
};

struct kt_objfilter {
  struct kt_strfilter cluster, group, resource, ns, name;
};

struct kt_link_pattern {
  struct kt_objfilter parent, child;
  int from_parent, from_child; /* 0 forbids steps from that side */
  struct kt_strfilter link_class;
};

struct kt_link_selector {
  int include_siblings;
  int up_max, down_max; /* -1 = unlimited */
  struct kt_link_pattern *pats;
  size_t npats;
};

enum kt_step_kind {
  KT_STEP_PRUNE_CHILDLESS, KT_STEP_REPLACE_NAME, KT_STEP_OBJECT_TAGS,
  KT_STEP_SVC_OP_REPLACE, KT_STEP_CLUSTER_NAME, KT_STEP_PRUNE_TAGS,
  KT_STEP_COLLAPSE, KT_STEP_EXTRACT, KT_STEP_COMPACT, KT_STEP_GROUP
};

struct kt_diff_class {
  char *name;
  int display, priority;
};

struct kt_step {
  enum kt_step_kind kind;
  char **strs; /* resourceTags, or the source tags */
  size_t nstrs;
  char *trace_source; /* ServiceOperationReplace */
  int dest_operation; /* else service */
  struct kt_strfilter filter; /* shouldCollapse / matchesPseudoType / shouldBeGrouped */
  struct { char *src, *from, *to; } *maps; /* CollapseNesting tagMappings */
  size_t nmaps;
  struct kt_diff_class *classes; /* [0] is the default class */
  size_t nclasses;
  struct { char *prefix; size_t cls; } *prefixes;
  size_t nprefixes;
  struct { char *type, *field; } *logmaps;
  size_t nlogmaps;
};

struct kt_mode {
  uint32_t id;
  char name[128];
  const struct kt_step **steps; /* borrowed from the set */
  size_t nsteps;
  const struct kt_link_selector **sels; /* union: any admits */
  size_t nsels;
  char classes[8][64]; /* modifier classes applied */
  size_t nclasses;
};

struct kt_tf_set {
  struct kt_mode *modes; /* default first */
  size_t nmodes;
  struct kt_step **steps; /* owned, each allocated on its own */
  size_t nsteps;
  struct kt_link_selector **sels;
  size_t nsels;
};

/* Loads a set from YAML text or a file. 0, or -EINVAL with a reason. */
int kt_tf_load_text(const char *yaml, size_t len, struct kt_tf_set *out,
                    char *err, size_t errlen);
int kt_tf_load_file(const char *path, struct kt_tf_set *out, char *err,
                    size_t errlen);
/* The shipped configuration. */
int kt_tf_load_default(struct kt_tf_set *out, char *err, size_t errlen);
void kt_tf_free(struct kt_tf_set *s);

int kt_strfilter_match(const struct kt_strfilter *f, const char *s);

#endif
