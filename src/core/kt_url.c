/* kt_url: see the header. */
#include "core/kt_url.h"

#include "core/kt_hex.h"

static int escape_at(const char *s, const char *e)
{
  return *s == '%' && e - s >= 3 && kt_hexval(s[1]) >= 0 && kt_hexval(s[2]) >= 0;
}

int kt_url_escapes_ok(const char *s, const char *e)
{
  for (; s < e; s++)
    if (*s == '%' && !escape_at(s, e))
      return 0;
  return 1;
}

long kt_url_unescape(const char *s, const char *e, char *out, size_t cap,
                     int strict)
{
  size_t n = 0;
  if (strict && !kt_url_escapes_ok(s, e))
    return -1;
  for (; s < e; n++) {
    char ch = *s == '+' ? ' ' : *s;
    if (escape_at(s, e)) {
      ch = (char)(kt_hexval(s[1]) << 4 | kt_hexval(s[2]));
      s += 3;
    } else {
      s++;
    }
    if (n + 1 < cap)
      out[n] = ch;
  }
  if (cap)
    out[n < cap ? n : cap - 1] = '\0';
  return (long)n;
}
