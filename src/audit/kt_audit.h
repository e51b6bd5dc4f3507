/* kt_audit: decoding audit.k8s.io Events and EventLists (v1 and v1beta1,
 * and the pre-1.12 log format with `timestamp`), and validating that an
 * event carries what tracing needs. */
#ifndef KT_AUDIT_H
#define KT_AUDIT_H
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct kt_jarena;

/* A decoded event. Strings point into `json`, which the event owns, with
 * a reference to the arena json was parsed into (kt_jmem), if any. */
struct kt_audit_event {
  cJSON *json;
  struct kt_jarena *arena;
  const char *audit_id, *stage, *verb, *username, *impersonated, *user_agent;
  const char *resource, *namespace, *name, *api_group, *api_version;
  const char *rv, *subresource, *uid;
  int code;             /* responseStatus.code, 0 when absent */
  int64_t received_us;  /* requestReceivedTimestamp (or old `timestamp`) */
  int64_t stage_us;     /* stageTimestamp (or received) */
  int has_object_ref;
  cJSON *response_object; /* borrowed, may be NULL */
  char cluster[64];
};

/* Why a body or an item was refused; the names are metric label values. */
enum kt_audit_err {
  KT_AUDIT_OK = 0,
  KT_AUDIT_BAD_JSON,      /* not JSON at all */
  KT_AUDIT_NOT_EVENT,     /* JSON, but not an Event or EventList */
  KT_AUDIT_MISSING_FIELD, /* an item lacks a required field */
  KT_AUDIT_BAD_TIMESTAMP,
  KT_AUDIT_CLOCK_SKEW,    /* before 2000 or too far in the future */
};
const char *kt_audit_err_name(enum kt_audit_err e);

/* Events stamped more than this ahead of our clock are refused as
 * clock_skew (default 1 hour; 0 = never). Process-wide; set at start. */
void kt_audit_set_max_future(int64_t us);

/* Parses a webhook body or a replayed document. On success *root is the
 * parsed document (caller releases it with kt_audit_doc_free) and *items
 * the array of events inside it (or root itself for a single Event,
 * *single = 1). The document may live in an arena (kt_jmem).
 * On failure returns the reason and writes a one-line message to err. */
enum kt_audit_err kt_audit_parse_doc(const char *buf, size_t len,
                                     cJSON **root, cJSON **items, int *single,
                                     char *err, size_t errlen);

/* Releases what kt_audit_parse_doc returned. tree = 0 when the tree went
 * elsewhere (a single Event now owned by an event): the document's
 * reference to its arena is still given up. */
void kt_audit_doc_free(cJSON *root, int tree);

/* Fills ev from one Event object and takes ownership of item (also on
 * failure, when it is freed). Required: verb, stage (or the old format's
 * absence of it, read as ResponseComplete), auditID and a parseable
 * timestamp. Returns KT_AUDIT_OK or the reason with a message in err. */
enum kt_audit_err kt_audit_event_init(struct kt_audit_event *ev, cJSON *item,
                                      const char *cluster, char *err,
                                      size_t errlen);
void kt_audit_event_free(struct kt_audit_event *ev);

/* Object key "cluster/group/resource/namespace/name" into buf; the name is
 * taken from responseObject when objectRef has none (generateName). */
void kt_audit_object_key(const struct kt_audit_event *ev, char *buf,
                         size_t len);
/* The name, falling back to responseObject.metadata.name; "" if none. */
const char *kt_audit_name(const struct kt_audit_event *ev);
const char *kt_audit_namespace(const struct kt_audit_event *ev);

/* Small cJSON helpers used across modules. */
const char *kt_json_str(const cJSON *obj, const char *key);
cJSON *kt_json_path(const cJSON *obj, const char *dotted); /* "a.b.c" */

#endif
