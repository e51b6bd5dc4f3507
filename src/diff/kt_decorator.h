/* kt_decorator: what a request changed, attached to its audit span as the
 * original's diff decorator does (behaviour spec §1.7.4), computed from the
 * audit log itself: at RequestResponse level the apiserver logs the full
 * object as responseObject, so each update is diffed against the last known
 * body of the object (kt_diffcache).
 *
 * Logs added: realError (failed requests), realVerbose "No-op update",
 * audit/objectDiff (lines "<path> <old> -> <new>"), audit/objectSnapshot
 * (on create and delete), kelemetryError (redacted, or no previous
 * version). Bodies are sanitised in place first: metadata.managedFields
 * removed; a Secret's data, stringData and last-applied annotation values
 * replaced by their length, so no Secret value is ever stored. */
#ifndef KT_DECORATOR_H
#define KT_DECORATOR_H

#include <stdint.h>

#include <cjson/cJSON.h>

struct kt_audit_event;
struct kt_diffcache;
struct kt_span;
struct kt_decorator;

/* redact_pattern: POSIX ERE on "group/version/resource/namespace/name";
 * NULL or "" = none. 0 or -EINVAL (bad regex, logged). */
int kt_decorator_new(const char *redact_pattern, struct kt_diffcache *dc,
                     struct kt_decorator **out);
void kt_decorator_free(struct kt_decorator *d);

/* Returns the event's full object body if the responseObject is one
 * (not a Status, Scale, Binding, ...), else NULL. Borrowed from ev. */
cJSON *kt_decorator_body(const struct kt_audit_event *ev);

/* Adds the logs and tags of ev to span. objkey is the object's cache key.
 * *remember says whether the event's body is to become the object's last
 * known version: the caller does that with kt_decorator_remember once it
 * no longer needs the body (after the aggregator). Returns 0. */
int kt_decorator_apply(struct kt_decorator *d, struct kt_audit_event *ev,
                       const char *objkey, struct kt_span *span, int *remember);
/* Brings what kt_decorator_apply will read for ev (the previous version
 * of an updated object) into the caches; called an event ahead. */
void kt_decorator_prefetch(struct kt_decorator *d,
                           const struct kt_audit_event *ev, const char *objkey);
/* Moves the event's body (its responseObject tree) into the cache: the
 * event no longer has it afterwards. */
void kt_decorator_remember(struct kt_decorator *d, struct kt_audit_event *ev,
                           const char *objkey);

struct kt_patchcache;
/* Prefers the diff controller's watch diffs (behaviour spec §1.7.4): an
 * update's patch is looked up by its new resourceVersion and, when found,
 * is what the span shows (tag `informer latency` set), because it is the
 * change between consecutive stored versions even when some requests were
 * not audited. Without one, an event carrying the object diffs its body at
 * once (no wait: a worker must not stall while a body diff is at hand);
 * an event without a body (Metadata-level audit, scale subresource) polls
 * every backoff until stage + event_timeout or start + total_timeout.
 * pc is borrowed. */
void kt_decorator_use_informer(struct kt_decorator *d,
                               struct kt_patchcache *pc, int64_t backoff_us,
                               int64_t event_timeout_us,
                               int64_t total_timeout_us);

/* Sanitises an object body in place (exposed for tests and informers). */
void kt_decorator_sanitize(cJSON *body, const char *group,
                           const char *resource);

#endif
