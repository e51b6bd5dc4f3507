/* kt_queue, between the webhook and the consumer workers: one object's
 * events in order, the global bound, and the peek a worker prefetches
 * the next event with. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>

#include "core/kt_queue.h"

struct ev {
  struct kt_queue_item q;
  int n;
};

/* The item kt_queue_peek shows after skip others, or NULL. */
static struct kt_queue_item *peek_at(struct kt_queue *q, size_t part,
                                     size_t skip)
{
  struct kt_queue_item *v[4];
  size_t n = kt_queue_peek(q, part, v, skip + 1);
  return n > skip ? v[skip] : NULL;
}

static void test_order_bound_peek(void **state)
{
  struct kt_queue *q;
  struct ev e[4] = {{.n = 0}, {.n = 1}, {.n = 2}, {.n = 3}};
  assert_int_equal(kt_queue_new(2, 3, &q), 0);
  assert_null(peek_at(q, 0, 0)); /* empty: NULL at once, no wait */
  assert_int_equal(kt_queue_reserve(q, 3), 0);
  assert_int_equal(kt_queue_reserve(q, 1), -EAGAIN); /* the bound */
  kt_queue_push(q, 0, &e[0].q);
  kt_queue_push(q, 1, &e[1].q);
  kt_queue_push(q, 0, &e[2].q);
  /* The peek shows what the pop returns next (or after skip others) and
   * leaves it queued. */
  assert_ptr_equal(peek_at(q, 0, 1), &e[2].q);
  assert_null(peek_at(q, 0, 2));
  assert_ptr_equal(peek_at(q, 0, 0), &e[0].q);
  assert_ptr_equal(peek_at(q, 0, 0), &e[0].q);
  assert_ptr_equal(kt_queue_pop(q, 0), &e[0].q);
  assert_ptr_equal(peek_at(q, 0, 0), &e[2].q);
  assert_ptr_equal(kt_queue_pop(q, 0), &e[2].q);
  assert_null(peek_at(q, 0, 0));
  assert_ptr_equal(peek_at(q, 1, 0), &e[1].q);
  assert_ptr_equal(kt_queue_pop(q, 1), &e[1].q);
  /* Popped is not done: the room comes back with kt_queue_done. */
  assert_int_equal(kt_queue_depth(q), 3);
  kt_queue_done(q, 3);
  assert_int_equal(kt_queue_reserve(q, 1), 0);
  kt_queue_push(q, 1, &e[3].q);
  kt_queue_close(q);
  assert_ptr_equal(kt_queue_pop(q, 1), &e[3].q); /* drained after close */
  assert_null(kt_queue_pop(q, 1));
  kt_queue_done(q, 1);
  kt_queue_free(q);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_order_bound_peek),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
