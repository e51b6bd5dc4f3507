/* kt_url: query-string unescaping ('+' is a space, %XX a byte), shared by
 * the HTTP layer's connection-less requests and kelemetrix's reading of
 * audit requestURIs. */
#ifndef KT_URL_H
#define KT_URL_H
#include <stddef.h>

/* Whether every '%' in [s, e) is followed by two hex digits. */
int kt_url_escapes_ok(const char *s, const char *e);

/* Unescapes [s, e) into out (cap bytes, always NUL-terminated, truncated).
 * strict: a bad escape makes it return -1 (Go's url.QueryUnescape);
 * otherwise a bad '%' is kept as it is. Returns the full decoded length. */
long kt_url_unescape(const char *s, const char *e, char *out, size_t cap,
                     int strict);

#endif
