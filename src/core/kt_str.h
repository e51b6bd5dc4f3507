/* kt_str: building short strings (cache keys, span titles) in a caller's
 * buffer. snprintf parses its format at every call, which on the ingest
 * path (a dozen keys and titles per event) cost more than the rest of the
 * key handling; these append directly. Like snprintf, the result is
 * truncated to the buffer and NUL-terminated, and `len` counts what the
 * whole string would take (len >= cap means it was truncated). */
#ifndef KT_STR_H
#define KT_STR_H
#include <stddef.h>

struct kt_str {
  char *b;
  size_t len, cap;
};

/* cap > 0. */
void kt_str_init(struct kt_str *s, char *buf, size_t cap);
void kt_str_add(struct kt_str *s, const char *str); /* NULL adds nothing */
void kt_str_addc(struct kt_str *s, char c);
void kt_str_int(struct kt_str *s, long long v);

#endif
