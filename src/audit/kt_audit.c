/* kt_audit: see kt_audit.h. Field lookups are done once per event here so
 * that the consumer never walks cJSON's linked lists again. */
#include "audit/kt_audit.h"

#include <stdio.h>
#include <string.h>

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

static void read_object_ref(struct kt_audit_event *ev)
{
  const cJSON *ref = cJSON_GetObjectItemCaseSensitive(ev->json, "objectRef");
  if (!cJSON_IsObject(ref))
    return;
  ev->has_object_ref = 1;
  ev->resource = kt_json_str(ref, "resource");
  ev->namespace = kt_json_str(ref, "namespace");
  ev->name = kt_json_str(ref, "name");
  ev->api_group = kt_json_str(ref, "apiGroup");
  ev->api_version = kt_json_str(ref, "apiVersion");
  ev->rv = kt_json_str(ref, "resourceVersion");
  ev->subresource = kt_json_str(ref, "subresource");
  ev->uid = kt_json_str(ref, "uid");
  if (!ev->resource)
    ev->has_object_ref = 0;
}

static enum kt_audit_err read_times(struct kt_audit_event *ev, char *err,
                                    size_t errlen)
{
  const char *recv = kt_json_str(ev->json, "requestReceivedTimestamp");
  const char *stage = kt_json_str(ev->json, "stageTimestamp");
  if (!recv) /* pre-1.12 log lines */
    recv = kt_json_str(ev->json, "timestamp");
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
  ev->audit_id = kt_json_str(item, "auditID");
  ev->verb = kt_json_str(item, "verb");
  ev->stage = kt_json_str(item, "stage");
  if (!ev->stage && !cJSON_GetObjectItemCaseSensitive(item, "stage"))
    ev->stage = "ResponseComplete"; /* old format logged completed only */
  if (!ev->audit_id || !ev->verb || !*ev->verb) {
    snprintf(err, errlen, "event %s lacks %s", ev->audit_id ? ev->audit_id : "?",
             ev->audit_id ? "verb" : "auditID");
    goto missing;
  }
  const cJSON *user = cJSON_GetObjectItemCaseSensitive(item, "user");
  ev->username = kt_json_str(user, "username");
  ev->impersonated = kt_json_str(
      cJSON_GetObjectItemCaseSensitive(item, "impersonatedUser"), "username");
  if (!ev->username) {
    snprintf(err, errlen, "event %s lacks user.username", ev->audit_id);
    goto missing;
  }
  ev->user_agent = kt_json_str(item, "userAgent");
  const cJSON *code = kt_json_path(item, "responseStatus.code");
  ev->code = cJSON_IsNumber(code) ? code->valueint : 0;
  ev->response_object = cJSON_GetObjectItemCaseSensitive(item, "responseObject");
  if (!cJSON_IsObject(ev->response_object))
    ev->response_object = NULL;
  read_object_ref(ev);
  enum kt_audit_err r = read_times(ev, err, errlen);
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
  snprintf(buf, len, "%s/%s/%s/%s/%s", ev->cluster,
           ev->api_group ? ev->api_group : "", ev->resource ? ev->resource : "",
           kt_audit_namespace(ev), kt_audit_name(ev));
}
