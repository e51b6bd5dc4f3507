/* kt_filter: see the header. */
#include "audit/kt_filter.h"

#include <errno.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/kt_audit.h"
#include "core/kt_log.h"

struct kt_filter {
  char *types, *agents, *only_cluster, *excl_clusters;
  regex_t re;
  int has_re;
  pthread_rwlock_t live_mu; /* guards the live regex */
  regex_t live;
  int has_live;
};

static char *dup_or_empty(const char *s)
{
  return strdup(s ? s : "");
}

int kt_filter_new(const struct kt_filter_opts *o, struct kt_filter **out)
{
  struct kt_filter *f = calloc(1, sizeof *f);
  if (!f)
    return -ENOMEM;
  f->types = dup_or_empty(o->exclude_types);
  f->agents = dup_or_empty(o->exclude_user_agents);
  f->only_cluster = dup_or_empty(o->only_cluster);
  f->excl_clusters = dup_or_empty(o->exclude_clusters);
  pthread_rwlock_init(&f->live_mu, NULL);
  if (o->exclude_regex && *o->exclude_regex) {
    int rc = regcomp(&f->re, o->exclude_regex, REG_EXTENDED | REG_NOSUB);
    if (rc) {
      char msg[256];
      regerror(rc, &f->re, msg, sizeof msg);
      kt_error("invalid --filter-exclude-regex: %s", msg);
      kt_filter_free(f);
      return -EINVAL;
    }
    f->has_re = 1;
  }
  *out = f;
  return 0;
}

void kt_filter_free(struct kt_filter *f)
{
  if (!f)
    return;
  if (f->has_re)
    regfree(&f->re);
  if (f->has_live)
    regfree(&f->live);
  pthread_rwlock_destroy(&f->live_mu);
  free(f->types);
  free(f->agents);
  free(f->only_cluster);
  free(f->excl_clusters);
  free(f);
}

/* Is item an element of the comma-separated list? */
static int in_list(const char *list, const char *item)
{
  size_t n = strlen(item);
  for (const char *p = list; *p;) {
    const char *c = strchr(p, ',');
    size_t len = c ? (size_t)(c - p) : strlen(p);
    if (len == n && strncmp(p, item, n) == 0)
      return 1;
    if (!c)
      break;
    p = c + 1;
  }
  return 0;
}

int kt_filter_type_listed(const char *list, const char *group,
                          const char *resource)
{
  char gr[300];
  snprintf(gr, sizeof gr, "%s%s%s", group ? group : "", group && *group ? "/" : "",
           resource ? resource : "");
  return in_list(list ? list : "", gr);
}

static int any_substring(const char *list, const char *s)
{
  char buf[256];
  for (const char *p = list; s && *p;) {
    const char *c = strchr(p, ',');
    size_t len = c ? (size_t)(c - p) : strlen(p);
    if (len && len < sizeof buf) {
      memcpy(buf, p, len);
      buf[len] = 0;
      if (strstr(s, buf))
        return 1;
    }
    if (!c)
      break;
    p = c + 1;
  }
  return 0;
}

static const char *check_verb(const struct kt_audit_event *ev)
{
  static const char *verbs[] = {"create", "update", "delete", "patch"};
  for (size_t i = 0; i < 4; i++)
    if (strcmp(ev->verb, verbs[i]) == 0)
      return NULL;
  return "verb";
}

int kt_filter_set_live(struct kt_filter *f, const char *regex, char *err,
                       size_t errlen)
{
  regex_t re;
  int rc = 0, set = regex && *regex;
  if (set && (rc = regcomp(&re, regex, REG_EXTENDED | REG_NOSUB))) {
    char msg[256];
    regerror(rc, &re, msg, sizeof msg);
    snprintf(err, errlen, "invalid exclude-regex %s: %s", regex, msg);
    set = 0;
  }
  pthread_rwlock_wrlock(&f->live_mu);
  if (f->has_live)
    regfree(&f->live);
  f->has_live = set;
  if (set)
    f->live = re;
  pthread_rwlock_unlock(&f->live_mu);
  return rc ? -EINVAL : 0;
}

static int live_match(const struct kt_filter *f, const char *path)
{
  struct kt_filter *mf = (struct kt_filter *)f; /* the lock, not the rules */
  pthread_rwlock_rdlock(&mf->live_mu);
  int m = f->has_live && regexec(&f->live, path, 0, NULL, 0) == 0;
  pthread_rwlock_unlock(&mf->live_mu);
  return m;
}

const char *kt_filter_check(const struct kt_filter *f,
                            const struct kt_audit_event *ev)
{
  char path[1024];
  if (*f->only_cluster && strcmp(f->only_cluster, ev->cluster) != 0)
    return "cluster";
  if (*f->excl_clusters && in_list(f->excl_clusters, ev->cluster))
    return "cluster";
  if (check_verb(ev))
    return "verb";
  if (!ev->stage || strcmp(ev->stage, "ResponseComplete") != 0)
    return "stage";
  if (!ev->has_object_ref)
    return "no_object_ref";
  const char *group = ev->api_group ? ev->api_group : "";
  if (kt_filter_type_listed(f->types, group, ev->resource))
    return "excluded_type";
  if (any_substring(f->agents, ev->user_agent))
    return "excluded_user_agent";
  if (!*kt_audit_name(ev))
    return "no_name";
  snprintf(path, sizeof path, "%s/%s/%s/%s/%s", group,
           ev->api_version ? ev->api_version : "", ev->resource,
           kt_audit_namespace(ev), kt_audit_name(ev));
  if (f->has_re && regexec(&f->re, path, 0, NULL, 0) == 0)
    return "excluded_regex";
  if (live_match(f, path))
    return "excluded_live_regex";
  return NULL;
}
