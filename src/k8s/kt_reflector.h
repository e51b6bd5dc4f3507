/* kt_reflector: list + watch of one resource (all namespaces) of one
 * cluster, keeping the last known state of every object, and reporting each
 * change exactly once.
 *
 * A thread lists (paged), then watches from the list's resourceVersion with
 * bookmarks; a watch that ends is resumed from the last resourceVersion
 * seen; an expired one (410, in the stream or as the answer) and a watch
 * that cannot be resumed cause a relist, which is compared with the known
 * state: new objects are added, changed ones modified, vanished ones
 * deleted. Changes carrying a resourceVersion already seen for the object
 * are dropped, so a replayed stream never reports twice. Failures back off
 * exponentially with jitter (0.5 s to 30 s). */
#ifndef KT_REFLECTOR_H
#define KT_REFLECTOR_H
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "k8s/kt_kube.h"

enum kt_change { KT_ADDED, KT_MODIFIED, KT_DELETED };

struct kt_reflector_ops {
  /* Optional: edits an incoming object before it is kept and reported
   * (drop what is never needed: smaller memory, smaller diffs). */
  void (*prepare)(void *ud, cJSON *obj);
  /* One change. ADDED: old NULL, initial set for objects of the first
   * list. MODIFIED: old is the previous state (NULL unless keep_objects).
   * DELETED: obj NULL, old the last state (or NULL unless keep_objects).
   * Both are valid during the call only. Called from the reflector's
   * thread. */
  void (*change)(void *ud, enum kt_change type, const cJSON *old,
                 const cJSON *obj, int initial);
};

struct kt_reflector_opts {
  const char *path;     /* list path: /api/v1/events, /apis/apps/v1/deployments,
                         * may carry a query (fieldSelector=...) */
  int keep_objects;     /* keep full objects (compact JSON) for old states */
  int page_size;        /* 0 = 500 */
  long watch_timeout_s; /* asked of the server; 0 = 300 .. 600 random */
};

/* Lists, expiries, errors and events are counted in the metric
 * informer_requests_total{cluster,path,outcome}. */
struct kt_reflector_stats {
  size_t objects, bytes; /* kept objects and their JSON bytes */
};

struct kt_reflector;

/* Starts the thread. kube and ops->ud must outlive the reflector. */
struct kt_reflector *kt_reflector_start(struct kt_kube *kube,
                                        const struct kt_reflector_opts *o,
                                        const struct kt_reflector_ops *ops,
                                        void *ud);
/* Asks the thread to stop without waiting (to stop many at once). */
void kt_reflector_signal(struct kt_reflector *r);
/* Stops and joins (within about a second); frees. */
void kt_reflector_stop(struct kt_reflector *r);
/* A reflector without a thread or a server, for tests and fuzzers: lines
 * given to kt_reflector_feed are handled as watch-stream lines. Free with
 * kt_reflector_stop. */
struct kt_reflector *kt_reflector_offline(const struct kt_reflector_opts *o,
                                          const struct kt_reflector_ops *ops,
                                          void *ud);
/* Handles one watch line; returns non-zero when it ends the stream (an
 * ERROR event or a line that is not a watch event). line is modified. */
int kt_reflector_feed(struct kt_reflector *r, char *line, size_t len);
void kt_reflector_stats(const struct kt_reflector *r,
                        struct kt_reflector_stats *out);

#endif
