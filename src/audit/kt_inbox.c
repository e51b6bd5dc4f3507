/* kt_inbox: see the header. A request is the kv entry
 * inbox/<key> = "<cluster>\n<source>\n<body>", deleted when its last event
 * has been processed and the spans are committed. The body is a zstd frame
 * (level 1: a 500 KB batch of audit JSON shrinks about tenfold); entries
 * written raw are still read. */
#include "audit/kt_inbox.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/kt_audit.h"
#include "audit/kt_consumer.h"
#include "core/kt_grow.h"
#include "core/kt_log.h"
#include "core/kt_zstd.h"
#include "diff/kt_decorator.h"
#include "store/kt_span.h"
#include "store/kt_store.h"

#define KV_NS "inbox"

struct kt_inbox {
  struct kt_store *box, *spans;
  struct kt_consumer *c;
  int compress;
  _Atomic uint64_t seq;
};

struct entry {
  struct kt_ticket t; /* first: the ticket's address is the entry's */
  struct kt_store *st;    /* where the entry is */
  struct kt_store *spans; /* where its spans go */
  char key[48];
};

/* In the span store's writer thread: the request's spans are committed. */
static void forget(void *arg, int ok)
{
  struct entry *e = arg;
  if (ok) /* else the spans were lost: recovered at the next start */
    kt_store_kv_del(e->st, KV_NS, e->key);
  free(e);
}

/* Every event of the request was processed (its spans queued). */
static void entry_done(struct kt_ticket *t)
{
  struct entry *e = (struct entry *)t;
  if (e->st == e->spans) /* one writer queue: the deletion commits after */
    forget(e, 1);
  else if (kt_store_after_commit(e->spans, forget, e))
    free(e); /* left in the inbox: recovered (and skipped) at the next start */
}

static struct entry *new_entry(struct kt_inbox *ib, struct kt_store *st,
                               const char *key)
{
  struct entry *e = calloc(1, sizeof *e);
  if (!e)
    return NULL;
  atomic_init(&e->t.pending, 1);
  e->t.done = entry_done;
  e->st = st;
  e->spans = ib->spans;
  if (key)
    snprintf(e->key, sizeof e->key, "%s", key);
  else /* random per process, a counter within it: sortable and unique */
    snprintf(e->key, sizeof e->key, "%016llx-%012llx",
             (unsigned long long)kt_random_u64(),
             (unsigned long long)atomic_fetch_add(&ib->seq, 1));
  return e;
}

int kt_inbox_new(struct kt_store *box, struct kt_store *spans,
                 struct kt_consumer *c, int compress, struct kt_inbox **out)
{
  struct kt_inbox *ib = calloc(1, sizeof *ib);
  if (!ib)
    return -ENOMEM;
  ib->compress = compress;
  ib->box = box;
  ib->spans = spans;
  ib->c = c;
  *out = ib;
  return 0;
}

void kt_inbox_free(struct kt_inbox *ib)
{
  free(ib);
}

static int is_secret(const cJSON *ev)
{
  const cJSON *ref = cJSON_GetObjectItemCaseSensitive(ev, "objectRef");
  const char *r = kt_json_str(ref, "resource"), *g = kt_json_str(ref, "apiGroup");
  return r && !strcmp(r, "secrets") && (!g || !*g);
}

/* The body to keep when a Secret's values are in it: the same events with
 * those values replaced by their length (as the decorator does before
 * anything else is stored), or NULL when the raw body holds none. */
static char *without_secrets(cJSON *items, int single)
{
  int found = 0;
  cJSON *it;
  if (single) {
    found = is_secret(items);
  } else {
    cJSON_ArrayForEach(it, items) found |= is_secret(it);
  }
  if (!found)
    return NULL;
  for (it = single ? items : items->child; it; it = single ? NULL : it->next) {
    if (!is_secret(it))
      continue;
    kt_decorator_sanitize(cJSON_GetObjectItemCaseSensitive(it, "requestObject"), "", "secrets");
    kt_decorator_sanitize(cJSON_GetObjectItemCaseSensitive(it, "responseObject"), "", "secrets");
  }
  if (single)
    return cJSON_PrintUnformatted(items);
  cJSON *list = cJSON_CreateObject();
  cJSON_AddStringToObject(list, "kind", "EventList");
  cJSON_AddStringToObject(list, "apiVersion", "audit.k8s.io/v1");
  cJSON_AddItemToObject(list, "items", cJSON_CreateArrayReference(items->child));
  char *text = cJSON_PrintUnformatted(list);
  cJSON_Delete(list);
  return text;
}

/* The stored form of body: hl bytes of header room, then a zstd frame (or
 * the raw body when compressing fails). malloc'd; *len its total size. */
static char *pack(const char *body, size_t blen, size_t hl, int compress,
                  size_t *len)
{
  size_t bound = ZSTD_compressBound(blen);
  char *val = malloc(hl + (bound > blen ? bound : blen));
  if (!val)
    return NULL;
  ZSTD_CCtx *cctx = compress ? kt_zstd_cctx() : NULL;
  size_t z = cctx ? ZSTD_compressCCtx(cctx, val + hl, bound, body, blen, 1) : 0;
  if (!z || ZSTD_isError(z)) {
    memcpy(val + hl, body, blen);
    z = blen;
  }
  *len = hl + z;
  return val;
}

/* The body of a stored entry, decompressed if it is a zstd frame; NULL if
 * unreadable. *owned tells whether it must be freed. */
static const char *unpack(const char *data, size_t len, size_t *out_len,
                          char **owned)
{
  *owned = NULL;
  unsigned long long n = ZSTD_getFrameContentSize(data, len);
  if (n == ZSTD_CONTENTSIZE_ERROR) { /* not zstd: written raw */
    *out_len = len;
    return data;
  }
  if (n == ZSTD_CONTENTSIZE_UNKNOWN || n > (1ULL << 31) || !(*owned = malloc(n + 1)))
    return NULL;
  ZSTD_DCtx *dctx = kt_zstd_dctx();
  size_t got = dctx ? ZSTD_decompressDCtx(dctx, *owned, n, data, len) : 0;
  if (!dctx || ZSTD_isError(got) || got != n) {
    free(*owned);
    *owned = NULL;
    return NULL;
  }
  (*owned)[n] = 0;
  *out_len = n;
  return *owned;
}

int kt_inbox_accept(struct kt_inbox *ib, const char *cluster,
                    const char *source, const char *body, size_t len,
                    cJSON *items, int single, struct kt_submit_result *res)
{
  /* A server store in an outage would hold the answer until it is back:
   * refuse now, the apiserver retries. */
  if (kt_store_stalled(ib->box))
    return -EBUSY;
  /* Spans that cannot be written: the process is about to stop (main's
   * store watch), and the apiserver had better send this to the next. */
  if (kt_store_failed(ib->spans))
    return -EIO;
  /* Secret values must never reach the disk, not even in the inbox. */
  char *clean = without_secrets(items, single);
  if (clean) {
    body = clean;
    len = strlen(clean);
  }
  struct entry *e = new_entry(ib, ib->box, NULL);
  size_t cl = strlen(cluster), sl = strlen(source), vlen;
  char *val = e ? pack(body, len, cl + sl + 2, ib->compress, &vlen) : NULL;
  free(clean);
  if (!val) {
    free(e);
    return -ENOMEM;
  }
  memcpy(val, cluster, cl); /* the header, before the packed body */
  val[cl] = '\n';
  memcpy(val + cl + 1, source, sl);
  val[cl + 1 + sl] = '\n';
  /* On disk before anything is queued: the 200 waits for this commit
   * only, not for the spans being batched. */
  int rc = kt_store_kv_put_durable(ib->box, KV_NS, e->key, val, vlen);
  free(val);
  if (!rc)
    rc = kt_consumer_submit_ticket(ib->c, cluster, source, items, single, 0,
                                   &e->t, 0, res);
  if (rc) { /* nothing was queued: the ticket is still ours alone */
    kt_store_kv_del(ib->box, KV_NS, e->key);
    free(e);
    return rc;
  }
  kt_ticket_release(&e->t);
  return 0;
}

struct pending {
  char key[48];
  char *val;
  size_t len;
};

struct scan {
  struct pending *v;
  size_t n, cap;
};

static int collect(const char *key, const char *val, size_t len,
                   int64_t expires_us, void *ud)
{
  struct scan *s = ud;
  if (KT_GROW(s->v, s->cap, s->n))
    return -ENOMEM;
  struct pending *p = &s->v[s->n];
  snprintf(p->key, sizeof p->key, "%s", key);
  p->val = malloc(len + 1);
  if (!p->val)
    return -ENOMEM;
  memcpy(p->val, val, len);
  p->val[len] = 0;
  p->len = len;
  s->n++;
  return 0;
}

/* "<cluster>\n<source>\n<body>" back into a submission. */
static void requeue(struct kt_inbox *ib, struct kt_store *st, struct pending *p)
{
  char *cl = p->val, *src = strchr(cl, '\n'), *body;
  cJSON *root, *items;
  int single;
  char err[256];
  struct kt_submit_result res;
  struct entry *e = new_entry(ib, st, p->key);
  if (!e)
    return;
  body = src ? memchr(src + 1, '\n', p->len - (size_t)(src + 1 - p->val)) : NULL;
  size_t dlen = 0;
  char *owned = NULL;
  const char *doc = body ? unpack(body + 1, p->len - (size_t)(body + 1 - p->val), &dlen,
                                  &owned) : NULL;
  if (!doc || kt_audit_parse_doc(doc, dlen, &root, &items, &single, err, sizeof err)) {
    kt_warn("inbox: dropping unreadable entry %s", p->key);
    free(owned);
    kt_ticket_release(&e->t);
    return;
  }
  free(owned);
  *src = *body = 0;
  int rc = kt_consumer_submit_ticket(ib->c, cl, src + 1, items, single, 1,
                                     &e->t, 1, &res);
  kt_audit_doc_free(root, !single || rc);
  kt_ticket_release(&e->t);
}

/* Requeues the entries of st; the number requeued or a negative code. */
static int recover_from(struct kt_inbox *ib, struct kt_store *st)
{
  struct scan s = {0};
  /* Collected first: submitting may wait for room while the consumers
   * read the store, and the scan holds the read connection. */
  int rc = kt_store_kv_scan(st, KV_NS, collect, &s);
  for (size_t i = 0; i < s.n; i++) {
    if (!rc)
      requeue(ib, st, &s.v[i]);
    free(s.v[i].val);
  }
  free(s.v);
  return rc ? rc : (int)s.n;
}

int kt_inbox_recover(struct kt_inbox *ib)
{
  int n = ib->box != ib->spans ? recover_from(ib, ib->spans) : 0;
  int m = n < 0 ? n : recover_from(ib, ib->box);
  return m < 0 ? m : n + m;
}
