/* kt_grow: room for one more element in a growable array (doubling). */
#ifndef KT_GROW_H
#define KT_GROW_H
#include <errno.h>
#include <stdlib.h>

/* arr (an lvalue pointer) holds n elements in cap slots (an lvalue
 * size_t); makes cap > n. Evaluates to 0, or -ENOMEM with the array left
 * unchanged. A macro so the pointer keeps its own type. */
#define KT_GROW(arr, cap, n)                                                  \
  __extension__({                                                             \
    int kt__rc = 0;                                                           \
    if ((n) >= (cap)) {                                                       \
      size_t kt__c = (cap) ? (cap) * 2 : 16;                                  \
      __typeof__(arr) kt__v = realloc((arr), kt__c * sizeof *(arr));          \
      if (kt__v) {                                                            \
        (arr) = kt__v;                                                        \
        (cap) = kt__c;                                                        \
      } else {                                                                \
        kt__rc = -ENOMEM;                                                     \
      }                                                                       \
    }                                                                         \
    kt__rc;                                                                   \
  })

#endif
