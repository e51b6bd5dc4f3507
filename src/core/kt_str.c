/* kt_str: see the header. */
#include "core/kt_str.h"

#include <string.h>

void kt_str_init(struct kt_str *s, char *buf, size_t cap)
{
  s->b = buf;
  s->len = 0;
  s->cap = cap;
  buf[0] = 0;
}

static void append(struct kt_str *s, const char *p, size_t n)
{
  if (s->len + 1 < s->cap) {
    size_t room = s->cap - 1 - s->len;
    memcpy(s->b + s->len, p, n < room ? n : room);
    s->b[s->len + (n < room ? n : room)] = 0;
  }
  s->len += n;
}

void kt_str_add(struct kt_str *s, const char *str)
{
  if (str)
    append(s, str, strlen(str));
}

void kt_str_addc(struct kt_str *s, char c)
{
  append(s, &c, 1);
}

void kt_str_int(struct kt_str *s, long long v)
{
  char num[24], *d = num + sizeof num;
  unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
  do
    *--d = (char)('0' + u % 10);
  while (u /= 10);
  if (v < 0)
    *--d = '-';
  append(s, d, (size_t)(num + sizeof num - d));
}
