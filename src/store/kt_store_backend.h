/* kt_store_backend: what the store backends (kt_store_sqlite.c,
 * kt_store_pg.c) share and implement. Not for callers of the store: they
 * use kt_store.h only.
 *
 * A backend's state struct starts with a struct kt_store whose ops table
 * kt_store.c dispatches to. The writer queue (bounded, group commits, one
 * writer thread) and the span body encoding are shared here so that both
 * backends behave the same towards callers: put() blocks while the queue
 * is full, flush() waits for the commit of everything put before it, span
 * bodies are encoded in the caller's thread. */
#ifndef KT_STORE_BACKEND_H
#define KT_STORE_BACKEND_H
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "store/kt_store.h"

struct kt_metric;

struct kt_store_ops {
  const char *name; /* "sqlite", "postgres": the backend label of metrics */
  void (*close)(struct kt_store *st);
  int (*get_trace)(struct kt_store *st, const uint8_t trace_id[16],
                   struct kt_span_vec *out);
  int (*find)(struct kt_store *st, const struct kt_store_query *q,
              struct kt_trace_ref **out, size_t *n);
  int64_t (*retain)(struct kt_store *st, int64_t before_us);
  int (*has_span)(struct kt_store *st, const uint8_t trace_id[16],
                  uint64_t span_id, const char *name);
  int (*clusters)(struct kt_store *st,
                  void (*fn)(const char *cluster, void *ud), void *ud);
  int64_t (*count)(struct kt_store *st);
  int (*kv_get)(struct kt_store *st, const char *ns, const char *key,
                char **val, size_t *len);
  /* optional: 1 while writes fail and are retried (a server outage) */
  int (*stalled)(struct kt_store *st);
  int (*kv_scan)(struct kt_store *st, const char *ns,
                 int (*fn)(const char *key, const char *val, size_t len,
                           int64_t expires_us, void *ud),
                 void *ud);
};

/* Writes (spans, kv puts and deletes, flush) all go through the backend's
 * writer queue, so they need no ops of their own: wq points at it. */
struct kt__wq;
struct kt_store {
  const struct kt_store_ops *ops;
  struct kt__wq *wq;
};

/* ---- search results: distinct trace ids, in the order found ---------- */

struct kt__refs {
  struct kt_trace_ref *v;
  size_t n, cap;
};
int kt__refs_has(const struct kt__refs *r, const void *tid);
/* Appends tid with the other fields zeroed. 0 or -ENOMEM. */
int kt__refs_add(struct kt__refs *r, const void *tid);

/* ---- span bodies ------------------------------------------------------ */

/* Encodes s's tags and logs (format: docs/internals/store.md) into a
 * malloc'd buffer (*body, caller frees). 0 or -ENOMEM. */
int kt__store_encode_body(const struct kt_span *s, unsigned char **body,
                          size_t *len);
/* Adds the tags and logs of a body to s; -EIO when it is malformed. */
int kt__store_decode_body(struct kt_span *s, const void *body, size_t len);
/* The five key tags kept in columns, in column order. */
extern const char *const kt__store_key_tags[5];

/* ---- the writer queue ------------------------------------------------- */

enum kt__op_kind { KT__OP_SPAN, KT__OP_KV_PUT, KT__OP_KV_DEL };

/* The columns of a span row, copied out of the span in the caller's
 * thread when the backend asks for rows (kt__wq.rows_only): the span (tens
 * of allocations) is then freed there, not in the single writer thread,
 * where it cost ~9 % of the writer's CPU. One allocation: the strings
 * point into text. */
struct kt__row {
  uint8_t trace_id[16];
  uint64_t span_id, parent_id;
  int64_t start_us, end_us;
  const char *service, *operation;
  const char *key[5]; /* values of kt__store_key_tags, NULL when absent */
  char text[];
};

struct kt__op {
  struct kt__op *next;
  enum kt__op_kind kind;
  uint64_t seq;
  struct kt_span *span;   /* NULL when the queue keeps rows_only */
  struct kt__row *row;    /* set when the queue keeps rows_only */
  unsigned char *body; /* the span's encoded tags and logs */
  size_t body_len;
  char *ns, *key;
  void *val;
  size_t len;
  int64_t expires_us;
};

/* A kt_store_after_commit call, waiting for the main lane's op seq to be
 * committed. Not counted against the queue's limit: one is registered per
 * webhook request once its events are processed, and it waits only for the
 * ops queued before it (at most the limit), so the calls are as many as
 * the requests finished while those commit. */
struct kt__call {
  struct kt__call *next;
  uint64_t seq;
  void (*fn)(void *arg, int ok);
  void *arg;
};

/* Writes one batch (ops in put order, n of them, spans of them spans) in
 * the writer thread. Retries are the backend's business; when it gives the
 * writes up it calls kt__wq_set_failed. */
typedef void kt__wq_commit_fn(void *ud, struct kt__op *batch, size_t n,
                              size_t spans);

struct kt__wq {
  pthread_mutex_t mu;
  pthread_cond_t has_ops, has_room, committed;
  struct kt__op *head, *tail;
  /* The urgent lane: writes someone waits for (the durable inbox's
   * entries), committed ahead of the batch being gathered, alone. */
  struct kt__op *uhead, *utail;
  uint64_t useq_enqueued, useq_committed;
  size_t nops, limit, batch_max;
  size_t committing; /* ops of the batch being written */
  int64_t batch_wait_us; /* how long a partial batch may wait for more */
  int64_t batch_idle_us; /* ... unless no op came for this long (0: no) */
  int64_t first_us;      /* when the oldest queued op arrived (monotonic) */
  unsigned flushing;     /* flush() callers waiting: commit at once */
  uint64_t seq_enqueued, seq_committed;
  int closing;
  int failed; /* writes were given up: nothing is durable any more */
  int rows_only; /* span ops carry row, not span; set before kt__wq_start */
  struct kt__call *calls, *calls_tail; /* in the order registered */
  pthread_t writer;
  kt__wq_commit_fn *commit;
  void *ud;
  struct kt_metric *m_lost; /* counts ops dropped after a give-up */
};

/* Starts the writer thread (named name). limit / batch_max come from the
 * store options (0 = defaults). 0 or a negative code. */
int kt__wq_start(struct kt__wq *q, const struct kt_store_opts *o,
                 kt__wq_commit_fn *commit, void *ud, const char *name);
/* Flushes, stops and joins the writer; frees the queue's resources. */
void kt__wq_stop(struct kt__wq *q);
int kt__wq_put(struct kt__wq *q, struct kt_span *span);
int kt__wq_kv(struct kt__wq *q, enum kt__op_kind kind, const char *ns,
              const char *key, const void *val, size_t len, int64_t exp);
int kt__wq_flush(struct kt__wq *q);
int kt__wq_after(struct kt__wq *q, void (*fn)(void *arg, int ok), void *arg);
/* A kv put through the urgent lane; returns once it is committed. */
int kt__wq_kv_sync(struct kt__wq *q, const char *ns, const char *key,
                   const void *val, size_t len);
int kt__wq_failed(struct kt__wq *q);
void kt__wq_set_failed(struct kt__wq *q);

#endif
