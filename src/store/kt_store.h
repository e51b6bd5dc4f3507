/* kt_store: the span store interface. Backends behind it (an ops table,
 * kt_store_backend.h): the embedded SQLite file (kt_store_sqlite.c) and a
 * shared PostgreSQL server (kt_store_pg.c). Callers see the same functions
 * and the same behaviour whichever backend was opened.
 *
 * Writes are asynchronous: kt_store_put() hands the span to a single
 * writer thread that commits in batches (group commit). The writer's queue
 * is bounded; put() blocks while it is full, which is how back-pressure
 * reaches the ingest queue (and the webhook's 503).
 * Reads may run on any thread concurrently with the writer. */
#ifndef KT_STORE_H
#define KT_STORE_H
#include <stddef.h>
#include <stdint.h>

#include "store/kt_span.h"

struct kt_store;

struct kt_store_opts {
  size_t queue_limit;     /* spans waiting for the writer; 0 = 65536 */
  size_t batch_max;       /* ops per transaction; 0 = 16384 */
  int64_t batch_wait_us;  /* max wait before committing a partial batch;
                             0 = 300 ms, < 0 = none */
  int64_t batch_idle_us;  /* a partial batch that got no op for this long
                             is committed; 0 = 5 ms, < 0 = never */
  /* SQLite only */
  const char *writer_name; /* the writer thread's name; NULL = kt-writer */
  int64_t wal_bytes;       /* WAL size that starts a checkpoint; 0 = 256 MB */
  /* PostgreSQL only */
  int64_t partition_us;   /* span partition length; 0 = 24h */
  unsigned pool;          /* read connections; 0 = 4 */
};

/* Search: every non-NULL filter must match the same span. */
struct kt_store_query {
  const char *cluster, *group, *resource, *namespace, *name;
  const char *service;          /* span type, e.g. "object"; NULL = any */
  const struct kt_tag *tags;    /* extra tag equality filters */
  size_t ntags;
  int64_t start_us, end_us;     /* span start in [start, end]; 0 = open */
  int64_t min_dur_us, max_dur_us; /* 0 = no bound */
  size_t limit;                 /* max traces; 0 = 20 */
};

/* One matching trace: its id, its root (object) span, and the root's key
 * tags so callers can group windows of one object without a second read. */
struct kt_trace_ref {
  uint8_t trace_id[16];
  uint64_t root_span_id;
  int64_t start_us, end_us; /* of the root span */
  /* the root's object: "cluster/group/resource/namespace/name" */
  char object[640];
};

/* Opens (creating if needed) the database at path, in WAL mode, and starts
 * the writer thread. Returns 0 and *out, or a negative errno-style code
 * with a one-line reason logged (e.g. -EIO for a corrupt file). */
int kt_store_open_sqlite(const char *path, const struct kt_store_opts *o,
                         struct kt_store **out);
/* Connects to PostgreSQL (conninfo: a libpq "key=value" string or a
 * postgresql:// URI), creates or migrates the schema (under an advisory
 * lock: concurrent starts are safe) and starts the writer thread. The
 * server must be reachable now; later outages are ridden out (writes wait
 * and retry, reads fail with -EIO). Returns 0 and *out, or a negative code
 * with a one-line reason logged: -EIO unreachable or refused, -EPROTO a
 * schema newer than this build. */
int kt_store_open_postgres(const char *conninfo, const struct kt_store_opts *o,
                           struct kt_store **out);
/* Flushes and closes; NULL is a no-op. */
void kt_store_close(struct kt_store *st);

/* Takes ownership of span in all cases. Idempotent: a span with the same
 * (trace_id, span_id) replaces the stored one. 0, or -ESHUTDOWN after
 * close began. */
int kt_store_put(struct kt_store *st, struct kt_span *span);
/* Returns once everything put before the call is committed: 0, or -EIO
 * once the store has given writes up (SQLite: disk full, read-only, I/O
 * errors, retried for about 1.5 s first; PostgreSQL never gives up, it
 * waits for the server to come back); from then on nothing is durable and
 * kt_store_failed says so. */
int kt_store_flush(struct kt_store *st);
/* Calls fn(arg, ok) once everything put before the call is committed
 * (ok = 1) or was given up (ok = 0): in the writer thread, after that
 * commit, or at once in the caller's thread when nothing is pending. The
 * writer waits for fn, so fn must be short and must not write to this
 * store (it may write to another). 0, or -ENOMEM (fn not called). */
int kt_store_after_commit(struct kt_store *st, void (*fn)(void *arg, int ok),
                          void *arg);
int kt_store_failed(struct kt_store *st);
/* Writes (spans, kv puts and deletes) not committed yet. */
size_t kt_store_pending(struct kt_store *st);
/* 1 while a server store (PostgreSQL) is unreachable and its writer keeps
 * retrying: a flush would wait for the outage to end. */
int kt_store_stalled(struct kt_store *st);

/* Reads below return -EIO (or 0 / nothing for has_span and count < 0)
 * when the server cannot be reached. */
/* Appends the trace's spans to out (caller owns them). 0 or -ENOENT. */
int kt_store_get_trace(struct kt_store *st, const uint8_t trace_id[16],
                       struct kt_span_vec *out);
/* Distinct traces with a matching span, newest root first. *out is
 * malloc'd (caller frees); *n may be 0. */
int kt_store_find(struct kt_store *st, const struct kt_store_query *q,
                  struct kt_trace_ref **out, size_t *n);
/* Deletes old spans and expired kv entries. Returns the number of spans
 * deleted, or a negative code. SQLite deletes the traces whose root ended
 * before before_us; PostgreSQL drops the whole time partitions that end
 * before it (and creates the coming ones). */
int64_t kt_store_retain(struct kt_store *st, int64_t before_us);
/* 1 when the span is stored (committed), else 0. name: the span's "name"
 * tag, which makes the lookup exact in SQLite; NULL when unknown (then the
 * trace's index entries are scanned). */
int kt_store_has_span(struct kt_store *st, const uint8_t trace_id[16],
                      uint64_t span_id, const char *name);
/* Calls fn for each distinct cluster name that has spans. */
int kt_store_clusters(struct kt_store *st,
                      void (*fn)(const char *cluster, void *ud), void *ud);
/* Number of stored spans (for tests, benchmarks and metrics). */
int64_t kt_store_count(struct kt_store *st);

/* A small persistent key-value space for the caches (span cache, last
 * known object bodies, trace cache). Namespaced; values are bytes.
 * kv_put goes through the writer queue in order with spans, so a cache
 * entry is never durable before the spans it refers to. expires_us = 0
 * means never. */
int kt_store_kv_put(struct kt_store *st, const char *ns, const char *key,
                    const void *val, size_t len, int64_t expires_us);
/* A put that returns once it is committed: it goes ahead of the spans
 * being gathered into a batch, alone in its transaction (the durable
 * inbox's entries; a flush would commit the pending batch with it, in
 * small transactions that cost the writer 2-3x per span). Never behind
 * writes queued after it. 0, or -EIO when the store cannot write. */
int kt_store_kv_put_durable(struct kt_store *st, const char *ns,
                            const char *key, const void *val, size_t len);
int kt_store_kv_del(struct kt_store *st, const char *ns, const char *key);
/* *val is malloc'd (caller frees) and NUL-terminated. 0 or -ENOENT. */
int kt_store_kv_get(struct kt_store *st, const char *ns, const char *key,
                    char **val, size_t *len);
/* Calls fn for every unexpired entry of ns (used to warm caches at start). */
int kt_store_kv_scan(struct kt_store *st, const char *ns,
                     int (*fn)(const char *key, const char *val, size_t len,
                               int64_t expires_us, void *ud),
                     void *ud);

#endif
