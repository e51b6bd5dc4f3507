/* kt_livefilter: the live audit filter (behaviour spec §1.2). Watches the
 * ConfigMap default/kelemetry-filter-config and applies its exclude-regex
 * key to the audit filter as it changes; an invalid regex clears it and is
 * reported as a Warning Event `InvalidConfig` on the ConfigMap. */
#ifndef KT_LIVEFILTER_H
#define KT_LIVEFILTER_H

struct kt_kube;
struct kt_filter;
struct kt_livefilter;

/* kube, filter borrowed. NULL on ENOMEM. */
struct kt_livefilter *kt_livefilter_start(struct kt_kube *kube,
                                          struct kt_filter *filter);
void kt_livefilter_stop(struct kt_livefilter *lf);

#endif
