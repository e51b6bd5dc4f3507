/* kt_queue: see kt_queue.h. One mutex for the room accounting and one per
 * partition for its list, so producers and consumers of different
 * partitions rarely meet. */
#include "core/kt_queue.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

struct part {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct kt_queue_item *head, *tail;
};

struct kt_queue {
  pthread_mutex_t mu;
  pthread_cond_t room; /* signalled when items are done */
  size_t used, limit, npart;
  int closed;
  struct part *parts;
};

int kt_queue_new(size_t npart, size_t limit, struct kt_queue **out)
{
  if (!npart || !limit)
    return -EINVAL;
  struct kt_queue *q = calloc(1, sizeof *q);
  if (!q)
    return -ENOMEM;
  q->parts = calloc(npart, sizeof *q->parts);
  if (!q->parts) {
    free(q);
    return -ENOMEM;
  }
  pthread_mutex_init(&q->mu, NULL);
  pthread_cond_init(&q->room, NULL);
  for (size_t i = 0; i < npart; i++) {
    pthread_mutex_init(&q->parts[i].mu, NULL);
    pthread_cond_init(&q->parts[i].cv, NULL);
  }
  q->npart = npart;
  q->limit = limit;
  *out = q;
  return 0;
}

void kt_queue_free(struct kt_queue *q)
{
  if (!q)
    return;
  for (size_t i = 0; i < q->npart; i++) {
    pthread_mutex_destroy(&q->parts[i].mu);
    pthread_cond_destroy(&q->parts[i].cv);
  }
  pthread_mutex_destroy(&q->mu);
  pthread_cond_destroy(&q->room);
  free(q->parts);
  free(q);
}

static int reserve(struct kt_queue *q, size_t n, int wait)
{
  int rc = 0;
  pthread_mutex_lock(&q->mu);
  for (;;) {
    if (q->closed) {
      rc = -ESHUTDOWN;
      break;
    }
    /* A batch larger than the whole limit may enter an empty queue, or it
     * could never be accepted at all. */
    if (q->used + n <= q->limit || q->used == 0) {
      q->used += n;
      break;
    }
    if (!wait) {
      rc = -EAGAIN;
      break;
    }
    pthread_cond_wait(&q->room, &q->mu);
  }
  pthread_mutex_unlock(&q->mu);
  return rc;
}

int kt_queue_reserve(struct kt_queue *q, size_t n)
{
  return reserve(q, n, 0);
}

int kt_queue_reserve_wait(struct kt_queue *q, size_t n)
{
  return reserve(q, n, 1);
}

void kt_queue_done(struct kt_queue *q, size_t n)
{
  pthread_mutex_lock(&q->mu);
  q->used = n > q->used ? 0 : q->used - n;
  pthread_cond_broadcast(&q->room);
  pthread_mutex_unlock(&q->mu);
}

void kt_queue_unreserve(struct kt_queue *q, size_t n)
{
  kt_queue_done(q, n);
}

void kt_queue_push(struct kt_queue *q, size_t part, struct kt_queue_item *it)
{
  struct part *p = &q->parts[part % q->npart];
  it->_next = NULL;
  pthread_mutex_lock(&p->mu);
  if (p->tail)
    p->tail->_next = it;
  else
    p->head = it;
  p->tail = it;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
}

struct kt_queue_item *kt_queue_pop(struct kt_queue *q, size_t part)
{
  struct part *p = &q->parts[part % q->npart];
  pthread_mutex_lock(&p->mu);
  while (!p->head) {
    int closed;
    pthread_mutex_lock(&q->mu);
    closed = q->closed;
    pthread_mutex_unlock(&q->mu);
    if (closed)
      break;
    pthread_cond_wait(&p->cv, &p->mu);
  }
  struct kt_queue_item *it = p->head;
  if (it) {
    p->head = it->_next;
    if (!p->head)
      p->tail = NULL;
  }
  pthread_mutex_unlock(&p->mu);
  return it;
}

size_t kt_queue_peek(struct kt_queue *q, size_t part,
                     struct kt_queue_item **out, size_t n)
{
  struct part *p = &q->parts[part % q->npart];
  size_t got = 0;
  pthread_mutex_lock(&p->mu);
  for (struct kt_queue_item *it = p->head; it && got < n; it = it->_next)
    out[got++] = it;
  pthread_mutex_unlock(&p->mu);
  return got;
}

void kt_queue_wait_idle(struct kt_queue *q)
{
  pthread_mutex_lock(&q->mu);
  while (q->used > 0)
    pthread_cond_wait(&q->room, &q->mu);
  pthread_mutex_unlock(&q->mu);
}

void kt_queue_close(struct kt_queue *q)
{
  pthread_mutex_lock(&q->mu);
  q->closed = 1;
  pthread_cond_broadcast(&q->room);
  pthread_mutex_unlock(&q->mu);
  for (size_t i = 0; i < q->npart; i++) {
    pthread_mutex_lock(&q->parts[i].mu);
    pthread_cond_broadcast(&q->parts[i].cv);
    pthread_mutex_unlock(&q->parts[i].mu);
  }
}

size_t kt_queue_depth(struct kt_queue *q)
{
  pthread_mutex_lock(&q->mu);
  size_t d = q->used;
  pthread_mutex_unlock(&q->mu);
  return d;
}

size_t kt_queue_limit(struct kt_queue *q)
{
  return q->limit;
}

size_t kt_queue_partitions(struct kt_queue *q)
{
  return q->npart;
}
