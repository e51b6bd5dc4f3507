/* kt_store: the public store functions dispatched to a backend's ops
 * table, plus what the backends share (kt_store_backend.h): the span body
 * encoding and the bounded writer queue with its group-commit thread.
 *
 * A span body keeps all tags and logs in a compact binary form:
 *   varint ntags, (varint len, bytes key, varint len, bytes value)*,
 *   a flag byte (raw or zstd), then the logs:
 *   varint nlogs, (zigzag varint ts, str type, str msg)*  */
#define _GNU_SOURCE /* pthread_setname_np */
#include "store/kt_store_backend.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

#include "core/kt_grow.h"
#include "core/kt_log.h"
#include "core/kt_metrics.h"
#include "core/kt_time.h"
#include "core/kt_zstd.h"

const char *const kt__store_key_tags[5] = {"cluster", "group", "resource",
                                           "namespace", "name"};

/* ---- dispatch --------------------------------------------------------- */

void kt_store_close(struct kt_store *st)
{
  if (st)
    st->ops->close(st);
}

int kt_store_put(struct kt_store *st, struct kt_span *span)
{
  return kt__wq_put(st->wq, span);
}

int kt_store_flush(struct kt_store *st)
{
  return kt__wq_flush(st->wq);
}

int kt_store_stalled(struct kt_store *st)
{
  return st->ops->stalled ? st->ops->stalled(st) : 0;
}

int kt_store_failed(struct kt_store *st)
{
  return kt__wq_failed(st->wq);
}

int kt_store_get_trace(struct kt_store *st, const uint8_t trace_id[16],
                       struct kt_span_vec *out)
{
  return st->ops->get_trace(st, trace_id, out);
}

static int newest_root_first(const void *a, const void *b)
{
  const struct kt_trace_ref *x = a, *y = b;
  return x->start_us < y->start_us ? 1 : x->start_us > y->start_us ? -1 : 0;
}

int kt_store_find(struct kt_store *st, const struct kt_store_query *q,
                  struct kt_trace_ref **out, size_t *n)
{
  *out = NULL;
  *n = 0;
  int rc = st->ops->find(st, q, out, n);
  if (!rc && *n) /* the interface's order, whatever the backend */
    qsort(*out, *n, sizeof **out, newest_root_first);
  return rc;
}

int64_t kt_store_retain(struct kt_store *st, int64_t before_us)
{
  return st->ops->retain(st, before_us);
}

int kt_store_has_span(struct kt_store *st, const uint8_t trace_id[16],
                      uint64_t span_id, const char *name)
{
  return st->ops->has_span(st, trace_id, span_id, name);
}

int kt_store_clusters(struct kt_store *st,
                      void (*fn)(const char *cluster, void *ud), void *ud)
{
  return st->ops->clusters(st, fn, ud);
}

int64_t kt_store_count(struct kt_store *st)
{
  return st->ops->count(st);
}

int kt_store_kv_put(struct kt_store *st, const char *ns, const char *key,
                    const void *val, size_t len, int64_t expires_us)
{
  return kt__wq_kv(st->wq, KT__OP_KV_PUT, ns, key, val, len, expires_us);
}

int kt_store_kv_put_durable(struct kt_store *st, const char *ns,
                            const char *key, const void *val, size_t len)
{
  return kt__wq_kv_sync(st->wq, ns, key, val, len);
}

size_t kt_store_pending(struct kt_store *st)
{
  struct kt__wq *q = st->wq;
  pthread_mutex_lock(&q->mu);
  size_t n = q->nops + q->committing;
  pthread_mutex_unlock(&q->mu);
  return n;
}

int kt_store_after_commit(struct kt_store *st, void (*fn)(void *arg, int ok),
                          void *arg)
{
  return kt__wq_after(st->wq, fn, arg);
}

int kt_store_kv_del(struct kt_store *st, const char *ns, const char *key)
{
  return kt__wq_kv(st->wq, KT__OP_KV_DEL, ns, key, NULL, 0, 0);
}

int kt_store_kv_get(struct kt_store *st, const char *ns, const char *key,
                    char **val, size_t *len)
{
  return st->ops->kv_get(st, ns, key, val, len);
}

int kt_store_kv_scan(struct kt_store *st, const char *ns,
                     int (*fn)(const char *key, const char *val, size_t len,
                               int64_t expires_us, void *ud),
                     void *ud)
{
  return st->ops->kv_scan(st, ns, fn, ud);
}

/* ---- body encoding ---------------------------------------------------- */

struct enc {
  unsigned char *b;
  size_t len, cap;
  int failed;
};

static void enc_reserve(struct enc *e, size_t n)
{
  if (e->failed || e->len + n <= e->cap)
    return;
  size_t cap = e->cap ? e->cap * 2 : 1024;
  while (cap < e->len + n)
    cap *= 2;
  unsigned char *b = realloc(e->b, cap);
  if (!b) {
    e->failed = 1;
    return;
  }
  e->b = b;
  e->cap = cap;
}

static void enc_varint(struct enc *e, uint64_t v)
{
  enc_reserve(e, 10);
  if (e->failed)
    return;
  while (v >= 0x80) {
    e->b[e->len++] = (unsigned char)(v | 0x80);
    v >>= 7;
  }
  e->b[e->len++] = (unsigned char)v;
}

static void enc_str(struct enc *e, const char *s)
{
  size_t n = strlen(s);
  enc_varint(e, n);
  enc_reserve(e, n);
  if (e->failed)
    return;
  memcpy(e->b + e->len, s, n);
  e->len += n;
}

/* Logs (diffs, snapshots) are most of a span's bytes and compress ~5x;
 * they are compressed here, in the caller's thread, so the single writer
 * has less to write. Tags stay plain (cheap to read, greppable). A fast
 * level: on a 2.5 KB diff, level -5 costs 2 us where level 1 costs 10-15
 * (table setup dominates small inputs) for nearly the same ratio. */
#define COMPRESS_MIN 2048
#define COMPRESS_LEVEL (-5)
enum { LOGS_RAW = 0, LOGS_ZSTD = 1 };

static void encode_logs(const struct kt_span *s, struct enc *e)
{
  enc_varint(e, s->nlogs);
  for (size_t i = 0; i < s->nlogs; i++) {
    int64_t ts = s->logs[i].ts_us;
    enc_varint(e, ((uint64_t)ts << 1) ^ (uint64_t)(ts >> 63));
    enc_str(e, s->logs[i].type);
    enc_str(e, s->logs[i].msg);
  }
}


static int encode_body(const struct kt_span *s, struct enc *e)
{
  enc_varint(e, s->ntags);
  for (size_t i = 0; i < s->ntags; i++) {
    enc_str(e, s->tags[i].key);
    enc_str(e, s->tags[i].value);
  }
  struct enc logs = {0};
  encode_logs(s, &logs);
  size_t bound = ZSTD_compressBound(logs.len);
  enc_reserve(e, 1 + 10 + bound);
  if (logs.failed || e->failed) {
    free(logs.b);
    return -ENOMEM;
  }
  ZSTD_CCtx *zc = logs.len >= COMPRESS_MIN ? kt_zstd_cctx() : NULL;
  size_t z = zc ? ZSTD_compressCCtx(zc, e->b + e->len + 11, bound, logs.b,
                                    logs.len, COMPRESS_LEVEL)
                : 0;
  if (z && !ZSTD_isError(z) && z < logs.len) {
    e->b[e->len++] = LOGS_ZSTD;
    size_t before = e->len;
    enc_varint(e, logs.len); /* at most 10 bytes: the data sits after 11 */
    memmove(e->b + e->len, e->b + before + 10, z);
    e->len += z;
  } else {
    e->b[e->len++] = LOGS_RAW;
    memcpy(e->b + e->len, logs.b, logs.len);
    e->len += logs.len;
  }
  free(logs.b);
  return 0;
}

struct dec {
  const unsigned char *p, *end;
  int bad;
};

static uint64_t dec_varint(struct dec *d)
{
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (d->p >= d->end) {
      d->bad = 1;
      return 0;
    }
    unsigned char c = *d->p++;
    v |= (uint64_t)(c & 0x7f) << shift;
    if (!(c & 0x80))
      return v;
  }
  d->bad = 1;
  return 0;
}

static char *dec_str(struct dec *d)
{
  uint64_t n = dec_varint(d);
  if (d->bad || n > (uint64_t)(d->end - d->p)) {
    d->bad = 1;
    return NULL;
  }
  char *s = malloc(n + 1);
  if (!s) {
    d->bad = 1;
    return NULL;
  }
  memcpy(s, d->p, n);
  s[n] = 0;
  d->p += n;
  return s;
}

static void decode_logs(struct kt_span *s, struct dec *d)
{
  uint64_t nl = dec_varint(d);
  for (uint64_t i = 0; i < nl && !d->bad; i++) {
    uint64_t z = dec_varint(d);
    int64_t ts = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
    char *t = dec_str(d), *m = dec_str(d);
    if (t && m)
      kt_span_add_log_owned(s, ts, t, m);
    else
      free(m);
    free(t);
  }
}

int kt__store_decode_body(struct kt_span *s, const void *body, size_t len)
{
  struct dec d = {body, (const unsigned char *)body + len, 0};
  uint64_t nt = dec_varint(&d);
  for (uint64_t i = 0; i < nt && !d.bad; i++) {
    char *k = dec_str(&d), *v = dec_str(&d);
    if (k && v)
      kt_span_add_tag(s, k, v);
    free(k);
    free(v);
  }
  if (d.bad || d.p >= d.end)
    return -EIO;
  int kind = *d.p++;
  if (kind == LOGS_RAW) {
    decode_logs(s, &d);
    return d.bad ? -EIO : 0;
  }
  uint64_t raw = dec_varint(&d);
  if (d.bad || kind != LOGS_ZSTD || raw > ((uint64_t)256 << 20))
    return -EIO;
  ZSTD_DCtx *zc = kt_zstd_dctx();
  unsigned char *buf = malloc(raw ? raw : 1);
  size_t got = buf && zc ? ZSTD_decompressDCtx(zc, buf, raw, d.p,
                                               (size_t)(d.end - d.p)) : 0;
  if (!buf || ZSTD_isError(got) || got != raw) {
    free(buf);
    return -EIO;
  }
  struct dec ld = {buf, buf + raw, 0};
  decode_logs(s, &ld);
  free(buf);
  return ld.bad ? -EIO : 0;
}

int kt__store_encode_body(const struct kt_span *s, unsigned char **body,
                          size_t *len)
{
  struct enc e = {0};
  if (encode_body(s, &e)) {
    free(e.b);
    return -ENOMEM;
  }
  *body = e.b;
  *len = e.len;
  return 0;
}

/* ---- the writer queue ------------------------------------------------- */

static void free_op(struct kt__op *op)
{
  kt_span_free(op->span);
  free(op->row);
  free(op->body);
  free(op->ns);
  free(op->key);
  free(op->val);
  free(op);
}

/* Each commit rewrites every page it dirtied (WAL frames, checksummed),
 * and spans land on random index pages: committing 30 spans costs nearly
 * as much as committing 1,000. So a partial batch waits up to
 * batch_wait_us after its first op arrived for more, unless someone
 * flushes, the batch is full, or no op came for batch_idle_us (5 ms: the
 * burst feeding it is over; at 200 ops/s and more ops come closer; the end
 * of a burst waited the whole batch_wait_us before). Nobody's answer waits on
 * it: the durable webhook's 200 waits for the inbox, a database of its own
 * (kt_inbox.h). Called with q->mu held and q->head set. */
static void wait_for_batch(struct kt__wq *q)
{
  if (q->batch_wait_us <= 0)
    return;
  int64_t deadline = q->first_us + q->batch_wait_us;
  uint64_t seen = q->seq_enqueued;
  while (q->head && q->nops < q->batch_max && !q->flushing && !q->closing &&
         !q->uhead) {
    int64_t now = kt_mono_us(), wake = deadline;
    if (now >= deadline)
      break;
    if (q->batch_idle_us > 0 && now + q->batch_idle_us < deadline)
      wake = now + q->batch_idle_us;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ns = ts.tv_nsec + (wake - now) * 1000;
    ts.tv_sec += ns / 1000000000;
    ts.tv_nsec = ns % 1000000000;
    if (pthread_cond_timedwait(&q->has_ops, &q->mu, &ts) == ETIMEDOUT &&
        q->batch_idle_us > 0 && q->seq_enqueued == seen)
      break; /* idle: nothing came since the last look */
    seen = q->seq_enqueued;
  }
}

/* Takes the urgent lane whole, or else up to batch_max ops of the main
 * one (after waiting for the batch to fill). Urgent ops only move ahead
 * of ops queued before them, never behind: an inbox entry's deletion,
 * queued after its put, cannot commit first. Called with q->mu held and
 * an op queued; *urgent tells which lane. */
static struct kt__op *take_batch(struct kt__wq *q, size_t *n, size_t *spans,
                                 int *urgent)
{
  if (!q->uhead)
    wait_for_batch(q);
  *urgent = q->uhead != NULL;
  struct kt__op **head = *urgent ? &q->uhead : &q->head;
  struct kt__op **tail = *urgent ? &q->utail : &q->tail;
  struct kt__op *batch = *head, *last = batch;
  *n = 1;
  *spans = batch->kind == KT__OP_SPAN;
  while (last->next && (*urgent || *n < q->batch_max)) {
    last = last->next;
    (*n)++;
    *spans += last->kind == KT__OP_SPAN;
  }
  *head = last->next;
  if (!*head)
    *tail = NULL;
  else if (!*urgent)
    q->first_us = kt_mono_us(); /* the rest waits anew, at most as long */
  last->next = NULL;
  q->nops -= *n;
  return batch;
}

/* The after-commit calls whose ops are all committed, unlinked. Called
 * with q->mu held. */
static struct kt__call *take_due_calls(struct kt__wq *q)
{
  struct kt__call *due = q->calls, **end = &q->calls;
  while (*end && (*end)->seq <= q->seq_committed)
    end = &(*end)->next;
  if (end == &q->calls)
    return NULL;
  q->calls = *end;
  if (!q->calls)
    q->calls_tail = NULL;
  *end = NULL;
  return due;
}

static void run_calls(struct kt__call *c, int ok)
{
  for (struct kt__call *next; c; c = next) {
    next = c->next;
    c->fn(c->arg, ok);
    free(c);
  }
}

static void *writer_main(void *arg)
{
  struct kt__wq *q = arg;
  for (;;) {
    pthread_mutex_lock(&q->mu);
    while (!q->head && !q->uhead && !q->closing)
      pthread_cond_wait(&q->has_ops, &q->mu);
    if (!q->head && !q->uhead) {
      pthread_mutex_unlock(&q->mu);
      break;
    }
    size_t n, spans;
    int urgent;
    struct kt__op *batch = take_batch(q, &n, &spans, &urgent);
    uint64_t seq = batch->seq;
    for (struct kt__op *op = batch; op; op = op->next)
      seq = op->seq;
    pthread_cond_broadcast(&q->has_room);
    int failed = q->failed;
    q->committing = n;
    pthread_mutex_unlock(&q->mu);
    /* After a give-up nothing more is written: a later write (an inbox
     * entry's deletion) must not make durable what depends on writes that
     * were lost; the inbox recovers them at the next start. */
    if (failed)
      kt_series_add(kt_metric_series(q->m_lost, NULL), (double)n);
    else
      q->commit(q->ud, batch, n, spans);
    for (struct kt__op *op = batch, *next; op; op = next) {
      next = op->next;
      free_op(op);
    }
    pthread_mutex_lock(&q->mu);
    q->committing = 0;
    if (urgent)
      q->useq_committed = seq;
    else
      q->seq_committed = seq;
    pthread_cond_broadcast(&q->committed);
    struct kt__call *due = urgent ? NULL : take_due_calls(q);
    int ok = !q->failed; /* the commit may just have given up */
    pthread_mutex_unlock(&q->mu);
    run_calls(due, ok);
  }
  return NULL;
}

int kt__wq_start(struct kt__wq *q, const struct kt_store_opts *o,
                 kt__wq_commit_fn *commit, void *ud, const char *name)
{
  int rows_only = q->rows_only;
  memset(q, 0, sizeof *q);
  q->rows_only = rows_only;
  q->limit = o && o->queue_limit ? o->queue_limit : 65536;
  q->batch_max = o && o->batch_max ? o->batch_max : 16384;
  q->batch_wait_us = !o || !o->batch_wait_us ? 300000
                     : o->batch_wait_us < 0 ? 0 : o->batch_wait_us;
  q->batch_idle_us = !o || !o->batch_idle_us ? 5000
                     : o->batch_idle_us < 0 ? 0 : o->batch_idle_us;
  q->commit = commit;
  q->ud = ud;
  q->m_lost = kt_metrics_counter(kt_metrics_default(),
      "store_writes_lost_total", "Writes given up after retries", NULL);
  pthread_mutex_init(&q->mu, NULL);
  pthread_condattr_t ca; /* the batch wait's deadline is monotonic */
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&q->has_ops, &ca);
  pthread_condattr_destroy(&ca);
  pthread_cond_init(&q->has_room, NULL);
  pthread_cond_init(&q->committed, NULL);
  int rc = pthread_create(&q->writer, NULL, writer_main, q);
  if (rc) {
    kt_error("store: cannot start the writer thread: %s", strerror(rc));
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->has_ops);
    pthread_cond_destroy(&q->has_room);
    pthread_cond_destroy(&q->committed);
    return -rc;
  }
  pthread_setname_np(q->writer, name);
  return 0;
}

void kt__wq_stop(struct kt__wq *q)
{
  kt__wq_flush(q);
  pthread_mutex_lock(&q->mu);
  q->closing = 1;
  pthread_cond_broadcast(&q->has_ops);
  pthread_cond_broadcast(&q->has_room);
  pthread_mutex_unlock(&q->mu);
  pthread_join(q->writer, NULL);
  pthread_mutex_destroy(&q->mu);
  pthread_cond_destroy(&q->has_ops);
  pthread_cond_destroy(&q->has_room);
  pthread_cond_destroy(&q->committed);
}

/* Into the urgent lane: the writer is woken at once. *seq: the op's
 * number in that lane. */
static void enqueue_urgent(struct kt__wq *q, struct kt__op *op, uint64_t *seq)
{
  *seq = op->seq = ++q->useq_enqueued;
  if (q->utail)
    q->utail->next = op;
  else
    q->uhead = op;
  q->utail = op;
  q->nops++;
  pthread_cond_signal(&q->has_ops);
}

static int enqueue_in(struct kt__wq *q, struct kt__op *op, uint64_t *urgent_seq)
{
  pthread_mutex_lock(&q->mu);
  while (q->nops >= q->limit && !q->closing)
    pthread_cond_wait(&q->has_room, &q->mu);
  if (q->closing) {
    pthread_mutex_unlock(&q->mu);
    free_op(op);
    return -ESHUTDOWN;
  }
  if (urgent_seq) {
    enqueue_urgent(q, op, urgent_seq);
    pthread_mutex_unlock(&q->mu);
    return 0;
  }
  op->seq = ++q->seq_enqueued;
  if (q->tail) {
    q->tail->next = op;
  } else {
    q->head = op;
    q->first_us = kt_mono_us();
  }
  q->tail = op;
  q->nops++;
  /* The writer waits for a first op, or for a full batch: no wake-up
   * per op. */
  if (q->nops == 1 || q->nops == q->batch_max)
    pthread_cond_signal(&q->has_ops);
  pthread_mutex_unlock(&q->mu);
  return 0;
}

static int enqueue(struct kt__wq *q, struct kt__op *op)
{
  return enqueue_in(q, op, NULL);
}

static char *row_str(char **p, const char *s)
{
  if (!s)
    return NULL;
  size_t n = strlen(s) + 1;
  char *d = memcpy(*p, s, n);
  *p += n;
  return d;
}

static struct kt__row *make_row(const struct kt_span *s)
{
  const char *key[5];
  size_t n = strlen(s->service) + strlen(s->operation) + 2;
  for (int i = 0; i < 5; i++) {
    key[i] = kt_span_tag(s, kt__store_key_tags[i]);
    n += key[i] ? strlen(key[i]) + 1 : 0;
  }
  struct kt__row *r = malloc(sizeof *r + n);
  if (!r)
    return NULL;
  memcpy(r->trace_id, s->trace_id, 16);
  r->span_id = s->span_id;
  r->parent_id = s->parent_id;
  r->start_us = s->start_us;
  r->end_us = s->end_us;
  char *p = r->text;
  r->service = row_str(&p, s->service);
  r->operation = row_str(&p, s->operation);
  for (int i = 0; i < 5; i++)
    r->key[i] = row_str(&p, key[i]);
  return r;
}

int kt__wq_put(struct kt__wq *q, struct kt_span *span)
{
  struct kt__op *op = calloc(1, sizeof *op);
  if (!op) {
    kt_span_free(span);
    return -ENOMEM;
  }
  op->kind = KT__OP_SPAN;
  op->span = span;
  /* Encoded here, in the caller's thread: the single writer thread is the
   * scarce resource. */
  if (kt__store_encode_body(span, &op->body, &op->body_len)) {
    free_op(op);
    return -ENOMEM;
  }
  if (q->rows_only) {
    op->row = make_row(span);
    kt_span_free(span);
    op->span = NULL;
    if (!op->row) {
      free_op(op);
      return -ENOMEM;
    }
  }
  return enqueue(q, op);
}

static struct kt__op *kv_op(enum kt__op_kind kind, const char *ns,
                           const char *key, const void *val, size_t len,
                           int64_t exp)
{
  struct kt__op *op = calloc(1, sizeof *op);
  if (!op)
    return NULL;
  op->kind = kind;
  op->ns = strdup(ns);
  op->key = strdup(key);
  op->len = len;
  op->expires_us = exp;
  if (val) {
    op->val = malloc(len ? len : 1);
    if (op->val)
      memcpy(op->val, val, len);
  }
  if (!op->ns || !op->key || (val && !op->val)) {
    free_op(op);
    return NULL;
  }
  return op;
}

int kt__wq_kv(struct kt__wq *q, enum kt__op_kind kind, const char *ns,
              const char *key, const void *val, size_t len, int64_t exp)
{
  struct kt__op *op = kv_op(kind, ns, key, val, len, exp);
  return op ? enqueue(q, op) : -ENOMEM;
}

int kt__wq_kv_sync(struct kt__wq *q, const char *ns, const char *key,
                   const void *val, size_t len)
{
  struct kt__op *op = kv_op(KT__OP_KV_PUT, ns, key, val, len, 0);
  uint64_t seq;
  int rc = op ? enqueue_in(q, op, &seq) : -ENOMEM;
  if (rc)
    return rc;
  pthread_mutex_lock(&q->mu);
  while (q->useq_committed < seq)
    pthread_cond_wait(&q->committed, &q->mu);
  int failed = q->failed;
  pthread_mutex_unlock(&q->mu);
  return failed ? -EIO : 0;
}

int kt__wq_flush(struct kt__wq *q)
{
  pthread_mutex_lock(&q->mu);
  uint64_t target = q->seq_enqueued, utarget = q->useq_enqueued;
  q->flushing++;
  pthread_cond_signal(&q->has_ops); /* a batch being gathered goes now */
  while (q->seq_committed < target || q->useq_committed < utarget)
    pthread_cond_wait(&q->committed, &q->mu);
  q->flushing--;
  int failed = q->failed;
  pthread_mutex_unlock(&q->mu);
  return failed ? -EIO : 0;
}

int kt__wq_after(struct kt__wq *q, void (*fn)(void *arg, int ok), void *arg)
{
  struct kt__call *c = calloc(1, sizeof *c);
  if (!c)
    return -ENOMEM;
  c->fn = fn;
  c->arg = arg;
  pthread_mutex_lock(&q->mu);
  c->seq = q->seq_enqueued;
  if (c->seq <= q->seq_committed) { /* nothing to wait for */
    int failed = q->failed;
    pthread_mutex_unlock(&q->mu);
    run_calls(c, !failed);
    return 0;
  }
  if (q->calls_tail)
    q->calls_tail->next = c;
  else
    q->calls = c;
  q->calls_tail = c;
  pthread_mutex_unlock(&q->mu);
  return 0;
}

int kt__wq_failed(struct kt__wq *q)
{
  pthread_mutex_lock(&q->mu);
  int failed = q->failed;
  pthread_mutex_unlock(&q->mu);
  return failed;
}

void kt__wq_set_failed(struct kt__wq *q)
{
  pthread_mutex_lock(&q->mu);
  q->failed = 1;
  pthread_mutex_unlock(&q->mu);
}

int kt__refs_has(const struct kt__refs *r, const void *tid)
{
  for (size_t i = 0; i < r->n; i++)
    if (memcmp(r->v[i].trace_id, tid, 16) == 0)
      return 1;
  return 0;
}

int kt__refs_add(struct kt__refs *r, const void *tid)
{
  if (KT_GROW(r->v, r->cap, r->n))
    return -ENOMEM;
  memset(&r->v[r->n], 0, sizeof r->v[0]);
  memcpy(r->v[r->n].trace_id, tid, 16);
  r->n++;
  return 0;
}
