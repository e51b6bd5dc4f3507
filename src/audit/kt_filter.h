/* kt_filter: which audit events become spans (behaviour spec §1.2, §1.4).
 * kt_filter_check returns NULL to keep an event, else the reason, which is
 * also the metric label of the drop. */
#ifndef KT_FILTER_H
#define KT_FILTER_H
#include <stddef.h>

struct kt_audit_event;
struct kt_filter;

struct kt_filter_opts {
  const char *exclude_types;       /* "events,events.k8s.io/events,..." */
  const char *exclude_user_agents; /* substrings, comma separated */
  const char *exclude_regex;       /* POSIX ERE on g/v/r/ns/name, or NULL */
  const char *only_cluster;        /* --audit-consumer-filter-cluster-name */
  const char *exclude_clusters;    /* --audit-consumer-exclude-cluster-names */
};

/* 0, or -EINVAL with the reason logged (bad regex). */
int kt_filter_new(const struct kt_filter_opts *o, struct kt_filter **out);
void kt_filter_free(struct kt_filter *f);
/* Replaces the live regex (the ConfigMap default/kelemetry-filter-config,
 * key exclude-regex; §1.2), applied like --filter-exclude-regex and besides
 * it. NULL or "" clears it. 0, or -EINVAL with the reason in err (the live
 * regex is then cleared). Safe while other threads check. */
int kt_filter_set_live(struct kt_filter *f, const char *regex, char *err,
                       size_t errlen);
/* Whether group/resource is in a --filter-exclude-types style list
 * ("resource" for the core group, "group/resource" otherwise). */
int kt_filter_type_listed(const char *list, const char *group,
                          const char *resource);
const char *kt_filter_check(const struct kt_filter *f,
                            const struct kt_audit_event *ev);

#endif
