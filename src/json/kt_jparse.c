/* kt_jparse: see the header.
 *
 * Every node is linked into its parent before its contents are parsed, so
 * the tree is whole at any failure and cJSON_Delete of the root frees what
 * was built (with an arena allocator, cJSON_Delete frees nothing and the
 * caller drops the arena). */
#include "json/kt_jparse.h"

#include "core/kt_swar.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 1000 /* cJSON's nesting limit */
#define MAX_NUMBER 63  /* cJSON reads at most this many characters */

struct parser {
  const char *s, *end;
  kt_jparse_alloc_fn *alloc;
  void *ud;
  int depth;
  const char *err;
};

static int fail(struct parser *p, const char *at)
{
  if (!p->err)
    p->err = at < p->end ? at : p->end;
  return -1;
}

static void skip_ws(struct parser *p)
{
  while (p->s < p->end &&
         (*p->s == ' ' || *p->s == '\n' || *p->s == '\r' || *p->s == '\t'))
    p->s++;
}

static cJSON *new_node(struct parser *p)
{
  cJSON *n = p->alloc(p->ud, sizeof *n);
  if (n)
    memset(n, 0, sizeof *n);
  return n;
}

/* Appends a fresh node to parent's children (*tail: the last one). */
static cJSON *add_child(struct parser *p, cJSON *parent, cJSON **tail)
{
  cJSON *n = new_node(p);
  if (!n)
    return NULL;
  if (*tail) {
    (*tail)->next = n;
    n->prev = *tail;
  } else {
    parent->child = n;
  }
  *tail = n;
  parent->child->prev = n; /* cJSON keeps the tail in the head's prev */
  return n;
}

static int hex4(const char *s, unsigned *out)
{
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = s[i];
    v <<= 4;
    if (c >= '0' && c <= '9')
      v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f')
      v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      v |= (unsigned)(c - 'A' + 10);
    else
      return -1;
  }
  *out = v;
  return 0;
}

static char *put_utf8(char *d, unsigned cp)
{
  if (cp < 0x80) {
    *d++ = (char)cp;
  } else if (cp < 0x800) {
    *d++ = (char)(0xC0 | (cp >> 6));
    *d++ = (char)(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *d++ = (char)(0xE0 | (cp >> 12));
    *d++ = (char)(0x80 | ((cp >> 6) & 0x3F));
    *d++ = (char)(0x80 | (cp & 0x3F));
  } else {
    *d++ = (char)(0xF0 | (cp >> 18));
    *d++ = (char)(0x80 | ((cp >> 12) & 0x3F));
    *d++ = (char)(0x80 | ((cp >> 6) & 0x3F));
    *d++ = (char)(0x80 | (cp & 0x3F));
  }
  return d;
}

/* \uXXXX at s (after the backslash-u), a surrogate pair included; the
 * code point in *cp, the characters read in *used. */
static int unicode_escape(const char *s, const char *end, unsigned *cp,
                          size_t *used)
{
  unsigned hi, lo;
  if (end - s < 4 || hex4(s, &hi))
    return -1;
  *used = 4;
  if (hi >= 0xDC00 && hi <= 0xDFFF)
    return -1; /* a low surrogate first */
  if (hi < 0xD800 || hi > 0xDBFF) {
    *cp = hi;
    return 0;
  }
  if (end - s < 10 || s[4] != '\\' || s[5] != 'u' || hex4(s + 6, &lo) ||
      lo < 0xDC00 || lo > 0xDFFF)
    return -1;
  *used = 10;
  *cp = 0x10000 + (((hi & 0x3FF) << 10) | (lo & 0x3FF));
  return 0;
}

/* Decodes [s, q) (escapes inside) into d; returns the end or NULL. */
static char *decode(struct parser *p, const char *s, const char *q, char *d)
{
  while (s < q) {
    const char *bs = memchr(s, '\\', (size_t)(q - s));
    size_t run = (size_t)((bs ? bs : q) - s);
    memcpy(d, s, run);
    d += run;
    if (!bs)
      break;
    s = bs + 2;
    switch (bs[1]) {
    case '"': *d++ = '"'; break;
    case '\\': *d++ = '\\'; break;
    case '/': *d++ = '/'; break;
    case 'b': *d++ = '\b'; break;
    case 'f': *d++ = '\f'; break;
    case 'n': *d++ = '\n'; break;
    case 'r': *d++ = '\r'; break;
    case 't': *d++ = '\t'; break;
    case 'u': {
      unsigned cp;
      size_t used;
      if (unicode_escape(s, q, &cp, &used)) {
        fail(p, bs);
        return NULL;
      }
      d = put_utf8(d, cp);
      s += used;
      break;
    }
    default:
      fail(p, bs);
      return NULL;
    }
  }
  return d;
}

/* The first '"' or '\\' in [q, end), or end. Most strings are short and
 * have no escape: one pass 8 bytes at a time (kt_swar; the lowest flagged
 * byte is the first match) where two memchr calls cost more in setup than
 * in scanning. */
static const char *quote_or_backslash(const char *q, const char *end)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  for (; end - q >= 8; q += 8) {
    uint64_t w, m;
    memcpy(&w, q, 8);
    m = kt_swar_eq(w, '"') | kt_swar_eq(w, '\\');
    if (m)
      return q + (__builtin_ctzll(m) >> 3);
  }
#endif
  while (q < end && *q != '"' && *q != '\\')
    q++;
  return q;
}

/* The string at p->s (its opening quote), allocated; p->s moves past it.
 * Escapes only shrink the text, so its raw length bounds the result. */
static char *parse_string(struct parser *p)
{
  const char *start = p->s + 1, *q = quote_or_backslash(start, p->end);
  int escaped = q < p->end && *q == '\\';
  while (escaped) { /* the closing quote: one not escaped */
    q = memchr(q, '"', (size_t)(p->end - q));
    if (!q)
      break;
    /* The quote ends the string unless an odd run of backslashes
     * precedes it. */
    const char *b = q;
    while (b > start && b[-1] == '\\')
      b--;
    if (((q - b) & 1) == 0)
      break;
    q++;
  }
  if (!q || q >= p->end) {
    fail(p, p->end);
    return NULL;
  }
  char *d = p->alloc(p->ud, (size_t)(q - start) + 1);
  if (!d) {
    fail(p, start);
    return NULL;
  }
  char *e = d;
  if (!escaped) {
    memcpy(d, start, (size_t)(q - start));
    e = d + (q - start);
  } else if (!(e = decode(p, start, q, d))) {
    *d = 0;
    return d; /* failed; the node keeps it for cJSON_Delete */
  }
  *e = 0;
  p->s = q + 1;
  return d;
}

static int is_digit(char c)
{
  return c >= '0' && c <= '9';
}

static const char *digits(const char *q, const char *end)
{
  while (q < end && is_digit(*q))
    q++;
  return q;
}

/* A number by the JSON grammar, stored as cJSON stores it. */
static int parse_number(struct parser *p, cJSON *n)
{
  const char *s = p->s, *q = s, *end = p->end;
  int neg = q < end && *q == '-';
  q += neg;
  if (q >= end || !is_digit(*q))
    return fail(p, q);
  const char *int_start = q;
  q = *q == '0' ? q + 1 : digits(q, end);
  size_t int_digits = (size_t)(q - int_start);
  int plain = 1;
  if (q < end && *q == '.') {
    if (++q >= end || !is_digit(*q))
      return fail(p, q);
    q = digits(q, end);
    plain = 0;
  }
  if (q < end && (*q == 'e' || *q == 'E')) {
    q++;
    if (q < end && (*q == '+' || *q == '-'))
      q++;
    if (q >= end || !is_digit(*q))
      return fail(p, q);
    q = digits(q, end);
    plain = 0;
  }
  if (q - s > MAX_NUMBER)
    return fail(p, s);
  double d;
  if (plain && int_digits <= 15) { /* exact in a double: no strtod */
    uint64_t v = 0;
    for (const char *c = int_start; c < q; c++)
      v = v * 10 + (uint64_t)(*c - '0');
    d = neg ? -(double)v : (double)v;
  } else {
    char tmp[MAX_NUMBER + 1];
    memcpy(tmp, s, (size_t)(q - s));
    tmp[q - s] = 0;
    d = strtod(tmp, NULL);
  }
  n->type = cJSON_Number;
  n->valuedouble = d;
  n->valueint = d >= INT_MAX ? INT_MAX : d <= (double)INT_MIN ? INT_MIN : (int)d;
  p->s = q;
  return 0;
}

static int parse_value(struct parser *p, cJSON *n);

/* Object members or array elements, up to the closing bracket. */
static int parse_members(struct parser *p, cJSON *n, int object)
{
  char close = object ? '}' : ']';
  cJSON *tail = NULL;
  p->s++;
  skip_ws(p);
  if (p->s < p->end && *p->s == close) {
    p->s++;
    return 0;
  }
  for (;;) {
    cJSON *c = add_child(p, n, &tail);
    if (!c)
      return fail(p, p->s);
    skip_ws(p);
    if (object) {
      if (p->s >= p->end || *p->s != '"')
        return fail(p, p->s);
      if (!(c->string = parse_string(p)) || p->err)
        return -1;
      skip_ws(p);
      if (p->s >= p->end || *p->s != ':')
        return fail(p, p->s);
      p->s++;
      skip_ws(p);
    }
    if (parse_value(p, c))
      return -1;
    skip_ws(p);
    if (p->s < p->end && *p->s == ',') {
      p->s++;
      continue;
    }
    if (p->s < p->end && *p->s == close) {
      p->s++;
      return 0;
    }
    return fail(p, p->s);
  }
}

static int literal(struct parser *p, const char *word, size_t n, int type,
                   cJSON *node)
{
  if ((size_t)(p->end - p->s) < n || memcmp(p->s, word, n) != 0)
    return fail(p, p->s);
  node->type = type;
  node->valueint = type == cJSON_True;
  p->s += n;
  return 0;
}

static int parse_value(struct parser *p, cJSON *n)
{
  if (p->s >= p->end)
    return fail(p, p->end);
  switch (*p->s) {
  case '"':
    n->type = cJSON_String;
    return (n->valuestring = parse_string(p)) && !p->err ? 0 : -1;
  case '{':
  case '[': {
    if (++p->depth > MAX_DEPTH)
      return fail(p, p->s);
    n->type = *p->s == '{' ? cJSON_Object : cJSON_Array;
    int rc = parse_members(p, n, n->type == cJSON_Object);
    p->depth--;
    return rc;
  }
  case 't':
    return literal(p, "true", 4, cJSON_True, n);
  case 'f':
    return literal(p, "false", 5, cJSON_False, n);
  case 'n':
    return literal(p, "null", 4, cJSON_NULL, n);
  default:
    return parse_number(p, n);
  }
}

cJSON *kt_jparse(const char *buf, size_t len, kt_jparse_alloc_fn *alloc,
                 void *ud, size_t *err_at)
{
  struct parser p = {buf, buf + len, alloc, ud, 0, NULL};
  cJSON *root = new_node(&p);
  if (!root) {
    *err_at = 0;
    return NULL;
  }
  skip_ws(&p);
  if (parse_value(&p, root) == 0) {
    skip_ws(&p);
    if (p.s == p.end)
      return root;
    fail(&p, p.s);
  }
  *err_at = (size_t)(p.err - buf);
  cJSON_Delete(root);
  return NULL;
}
