/* kt_audit: see kt_audit.h. Field lookups are done once per event here so
 * that the consumer never walks cJSON's linked lists again. */
#include "audit/kt_audit.h"

#include <stdio.h>
#include <string.h>

#include "core/kt_str.h"
#include "core/kt_time.h"
#include "json/kt_jmem.h"

static const char *err_names[] = {"ok", "bad_json", "not_event",
                                  "missing_field", "bad_timestamp", "clock_skew"};

#define YEAR_2000_US 946684800000000LL

static _Atomic int64_t max_future_us = 3600000000LL;

void kt_audit_set_max_future(int64_t us)
{
  max_future_us = us;
}

const char *kt_audit_err_name(enum kt_audit_err e)
{
  return err_names[e];
}

const char *kt_json_str(const cJSON *obj, const char *key)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

cJSON *kt_json_path(const cJSON *obj, const char *dotted)
{
  char part[128];
  const char *p = dotted;
  const cJSON *cur = obj;
  while (cur && *p) {
    const char *dot = strchr(p, '.');
    size_t n = dot ? (size_t)(dot - p) : strlen(p);
    if (n >= sizeof part)
      return NULL;
    memcpy(part, p, n);
    part[n] = 0;
    cur = cJSON_GetObjectItemCaseSensitive(cur, part);
    p += n + (dot ? 1 : 0);
  }
  return (cJSON *)cur;
}

static int is_audit_api(const char *api)
{
  return api && (strcmp(api, "audit.k8s.io/v1") == 0 ||
                 strcmp(api, "audit.k8s.io/v1beta1") == 0 ||
                 strcmp(api, "audit.k8s.io/v1alpha1") == 0);
}

enum kt_audit_err kt_audit_parse_doc(const char *buf, size_t len,
                                     cJSON **root, cJSON **items, int *single,
                                     char *err, size_t errlen)
{
  size_t at;
  *root = kt_jmem_parse(buf, len, &at);
  if (!*root) {
    snprintf(err, errlen, "malformed JSON near byte %zu", at);
    return KT_AUDIT_BAD_JSON;
  }
  const char *kind = kt_json_str(*root, "kind");
  const char *api = kt_json_str(*root, "apiVersion");
  *single = 0;
  if (kind && strcmp(kind, "EventList") == 0 && (!api || is_audit_api(api))) {
    *items = cJSON_GetObjectItemCaseSensitive(*root, "items");
    if (cJSON_IsArray(*items))
      return KT_AUDIT_OK;
    snprintf(err, errlen, "EventList has no items array");
  } else if (cJSON_IsObject(*root) && (!kind || strcmp(kind, "Event") == 0) &&
             (!api || is_audit_api(api)) &&
             (kind || cJSON_GetObjectItemCaseSensitive(*root, "auditID"))) {
    /* Falco-style re-serialised lines have no kind/apiVersion. */
    *items = *root;
    *single = 1;
    return KT_AUDIT_OK;
  } else {
    snprintf(err, errlen, "not an audit.k8s.io Event or EventList (kind %s)",
             kind ? kind : "missing");
  }
  kt_audit_doc_free(*root, 1);
  *root = NULL;
  return KT_AUDIT_NOT_EVENT;
}

/* Looking members up by name scans every key with strcmp each time; an
 * event's members are read in one pass instead (the webhook does this for
 * every event it accepts). The first of duplicate keys wins, as with
 * cJSON_GetObjectItem. */
struct members {
  const cJSON *audit_id, *verb, *stage, *user, *imp, *ua, *status, *resp,
      *ref, *recv, *stage_ts, *ts;
};

static void first(const cJSON **slot, const cJSON *c)
{
  if (!*slot)
    *slot = c;
}

static void scan_members(const cJSON *item, struct members *m)
{
  memset(m, 0, sizeof *m);
  for (const cJSON *c = item->child; c; c = c->next) {
    const char *k = c->string ? c->string : "";
    switch (k[0]) {
    case 'a': if (!strcmp(k, "auditID")) first(&m->audit_id, c); break;
    case 'v': if (!strcmp(k, "verb")) first(&m->verb, c); break;
    case 'i': if (!strcmp(k, "impersonatedUser")) first(&m->imp, c); break;
    case 'o': if (!strcmp(k, "objectRef")) first(&m->ref, c); break;
    case 't': if (!strcmp(k, "timestamp")) first(&m->ts, c); break;
    case 's':
      if (!strcmp(k, "stage"))
        first(&m->stage, c);
      else if (!strcmp(k, "stageTimestamp"))
        first(&m->stage_ts, c);
      break;
    case 'u':
      if (!strcmp(k, "user"))
        first(&m->user, c);
      else if (!strcmp(k, "userAgent"))
        first(&m->ua, c);
      break;
    case 'r':
      if (!strcmp(k, "responseStatus"))
        first(&m->status, c);
      else if (!strcmp(k, "responseObject"))
        first(&m->resp, c);
      else if (!strcmp(k, "requestReceivedTimestamp"))
        first(&m->recv, c);
      break;
    }
  }
}

static const char *str_of(const cJSON *v)
{
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void read_object_ref(struct kt_audit_event *ev, const cJSON *ref)
{
  if (!cJSON_IsObject(ref))
    return;
  const char **slot;
  for (const cJSON *c = ref->child; c; c = c->next) {
    const char *k = c->string ? c->string : "";
    slot = !strcmp(k, "resource")          ? &ev->resource
           : !strcmp(k, "namespace")       ? &ev->namespace
           : !strcmp(k, "name")            ? &ev->name
           : !strcmp(k, "apiGroup")        ? &ev->api_group
           : !strcmp(k, "apiVersion")      ? &ev->api_version
           : !strcmp(k, "resourceVersion") ? &ev->rv
           : !strcmp(k, "subresource")     ? &ev->subresource
           : !strcmp(k, "uid")             ? &ev->uid
                                           : NULL;
    if (slot && !*slot && cJSON_IsString(c))
      *slot = c->valuestring;
  }
  ev->has_object_ref = ev->resource != NULL;
}

static enum kt_audit_err read_times(struct kt_audit_event *ev,
                                    const struct members *m, char *err,
                                    size_t errlen)
{
  const char *recv = str_of(m->recv);
  const char *stage = str_of(m->stage_ts);
  if (!recv) /* pre-1.12 log lines */
    recv = str_of(m->ts);
  if (!recv)
    recv = stage;
  if (!recv) {
    snprintf(err, errlen, "event %s has no timestamp", ev->audit_id);
    return KT_AUDIT_MISSING_FIELD;
  }
  if (kt_time_parse(recv, &ev->received_us) ||
      (stage && kt_time_parse(stage, &ev->stage_us))) {
    snprintf(err, errlen, "event %s has a malformed timestamp", ev->audit_id);
    return KT_AUDIT_BAD_TIMESTAMP;
  }
  if (!stage || ev->stage_us < ev->received_us)
    ev->stage_us = ev->received_us;
  /* A sender's clock gone wrong would file the event under a window no
   * one searches, and that retention never reaches. */
  int64_t future = max_future_us;
  if (ev->received_us < YEAR_2000_US ||
      (future > 0 && ev->stage_us > kt_now_us() + future)) {
    snprintf(err, errlen, "event %s: timestamp %s is implausible (clock skew?)",
             ev->audit_id, stage ? stage : recv);
    return KT_AUDIT_CLOCK_SKEW;
  }
  return KT_AUDIT_OK;
}

enum kt_audit_err kt_audit_event_init(struct kt_audit_event *ev, cJSON *item,
                                      const char *cluster, char *err,
                                      size_t errlen)
{
  memset(ev, 0, sizeof *ev);
  ev->json = item;
  ev->arena = kt_jmem_arena_of(item);
  kt_jmem_ref(ev->arena);
  snprintf(ev->cluster, sizeof ev->cluster, "%s", cluster ? cluster : "");
  if (!cJSON_IsObject(item)) {
    snprintf(err, errlen, "item is not a JSON object");
    goto missing;
  }
  struct members m;
  scan_members(item, &m);
  ev->audit_id = str_of(m.audit_id);
  ev->verb = str_of(m.verb);
  ev->stage = str_of(m.stage);
  if (!m.stage)
    ev->stage = "ResponseComplete"; /* old format logged completed only */
  if (!ev->audit_id || !ev->verb || !*ev->verb) {
    snprintf(err, errlen, "event %s lacks %s", ev->audit_id ? ev->audit_id : "?",
             ev->audit_id ? "verb" : "auditID");
    goto missing;
  }
  ev->username = kt_json_str(m.user, "username");
  ev->impersonated = kt_json_str(m.imp, "username");
  if (!ev->username) {
    snprintf(err, errlen, "event %s lacks user.username", ev->audit_id);
    goto missing;
  }
  ev->user_agent = str_of(m.ua);
  const cJSON *code = cJSON_GetObjectItemCaseSensitive(m.status, "code");
  ev->code = cJSON_IsNumber(code) ? code->valueint : 0;
  ev->response_object = cJSON_IsObject(m.resp) ? (cJSON *)m.resp : NULL;
  read_object_ref(ev, m.ref);
  enum kt_audit_err r = read_times(ev, &m, err, errlen);
  if (r != KT_AUDIT_OK)
    kt_audit_event_free(ev);
  return r;
missing:
  kt_audit_event_free(ev);
  return KT_AUDIT_MISSING_FIELD;
}

void kt_audit_doc_free(cJSON *root, int tree)
{
  struct kt_jarena *a = kt_jmem_arena_of(root);
  if (tree)
    cJSON_Delete(root);
  kt_jmem_unref(a);
}

void kt_audit_event_free(struct kt_audit_event *ev)
{
  cJSON_Delete(ev->json); /* heap nodes added to an arena tree, if any */
  kt_jmem_unref(ev->arena);
  ev->json = NULL;
  ev->arena = NULL;
}

const char *kt_audit_name(const struct kt_audit_event *ev)
{
  if (ev->name && *ev->name)
    return ev->name;
  const char *n = kt_json_str(kt_json_path(ev->response_object, "metadata"),
                              "name");
  const char *kind = kt_json_str(ev->response_object, "kind");
  return n && !(kind && strcmp(kind, "Status") == 0) ? n : "";
}

const char *kt_audit_namespace(const struct kt_audit_event *ev)
{
  if (ev->namespace && *ev->namespace)
    return ev->namespace;
  const char *ns = kt_json_str(kt_json_path(ev->response_object, "metadata"),
                               "namespace");
  return ns ? ns : "";
}

void kt_audit_object_key(const struct kt_audit_event *ev, char *buf,
                         size_t len)
{
  struct kt_str s;
  const char *parts[] = {ev->cluster, ev->api_group, ev->resource,
                         kt_audit_namespace(ev), kt_audit_name(ev)};
  kt_str_init(&s, buf, len);
  for (int i = 0; i < 5; i++) {
    if (i)
      kt_str_addc(&s, '/');
    kt_str_add(&s, parts[i]);
  }
}
