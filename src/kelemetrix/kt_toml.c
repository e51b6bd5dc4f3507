/* kt_toml: see the header. A hand-written recursive-descent parser over a
 * cursor; no recursion deeper than one array, so hostile input cannot
 * exhaust the stack. Every failure names the line it happened on. */
#include "kelemetrix/kt_toml.h"
#include "core/kt_hex.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/kt_grow.h"

struct cur {
  const char *p, *end;
  int line;
  int *eline;
  char *err;
  size_t errlen;
  struct kt_toml_doc *doc;
};

/* A growable string. */
struct sbuf {
  char *b;
  size_t len, cap;
};

static int fail(struct cur *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int fail(struct cur *c, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->err, c->errlen, fmt, ap);
  va_end(ap);
  *c->eline = c->line;
  return -EINVAL;
}

static int sb_put(struct sbuf *sb, char ch)
{
  if (KT_GROW(sb->b, sb->cap, sb->len + 1))
    return -ENOMEM;
  sb->b[sb->len++] = ch;
  sb->b[sb->len] = '\0';
  return 0;
}

const char *kt_toml_type_name(enum kt_toml_type t)
{
  static const char *const names[] = {"string", "integer", "float",
                                      "boolean", "array"};
  return names[t];
}

/* ---- characters ---- */

static int at_end(const struct cur *c)
{
  return c->p >= c->end;
}

static int peek(const struct cur *c, size_t off)
{
  return c->p + off < c->end ? (unsigned char)c->p[off] : -1;
}

static int is_bare(int ch)
{
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
         (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
}

static int is_digit(int ch)
{
  return ch >= '0' && ch <= '9';
}

static int is_ctl(int ch)
{
  return (ch >= 0 && ch < 0x20 && ch != '\t') || ch == 0x7f;
}

static void skip_ws(struct cur *c)
{
  while (!at_end(c) && (*c->p == ' ' || *c->p == '\t'))
    c->p++;
}

/* Newline at the cursor (LF or CRLF): consumes it and returns 1. */
static int newline(struct cur *c)
{
  if (peek(c, 0) == '\n') {
    c->p++;
  } else if (peek(c, 0) == '\r' && peek(c, 1) == '\n') {
    c->p += 2;
  } else {
    return 0;
  }
  c->line++;
  return 1;
}

/* A '#' comment up to (not including) the newline. */
static int skip_comment(struct cur *c)
{
  if (peek(c, 0) != '#')
    return 0;
  for (c->p++; !at_end(c) && *c->p != '\n'; c->p++) {
    if (*c->p == '\r' && peek(c, 1) == '\n')
      break;
    if (is_ctl((unsigned char)*c->p))
      return fail(c, "control character in a comment");
  }
  return 0;
}

/* Whatever may follow a header or a pair: blanks, a comment, the end of
 * the line (or of the text). */
static int end_of_line(struct cur *c, const char *after)
{
  skip_ws(c);
  int rc = skip_comment(c);
  if (rc)
    return rc;
  if (at_end(c) || newline(c))
    return 0;
  if (is_ctl(peek(c, 0)))
    return fail(c, "control character after %s", after);
  return fail(c, "unexpected '%c' after %s", *c->p, after);
}

/* Blanks, comments and newlines, inside arrays. */
static int skip_space_lines(struct cur *c)
{
  for (;;) {
    skip_ws(c);
    int rc = skip_comment(c);
    if (rc)
      return rc;
    if (!newline(c))
      return 0;
  }
}

/* Bytes that are not UTF-8 (overlong, surrogates, > U+10FFFF): the line
 * of the first, or 0. */
static int utf8_bad_line(const char *s, size_t len)
{
  int line = 1;
  const unsigned char *p = (const unsigned char *)s, *e = p + len;
  while (p < e) {
    unsigned char b = *p;
    size_t n = b < 0x80 ? 1 : (b & 0xe0) == 0xc0 ? 2 : (b & 0xf0) == 0xe0 ? 3
               : (b & 0xf8) == 0xf0 ? 4 : 0;
    if (n == 0 || (size_t)(e - p) < n)
      return line;
    uint32_t cp = n == 1 ? b : n == 2 ? b & 0x1f : n == 3 ? b & 0x0f : b & 0x07;
    for (size_t i = 1; i < n; i++) {
      if ((p[i] & 0xc0) != 0x80)
        return line;
      cp = cp << 6 | (p[i] & 0x3f);
    }
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return line;
    line += b == '\n';
    p += n;
  }
  return 0;
}

/* ---- strings ---- */

static int put_utf8(struct sbuf *sb, uint32_t cp)
{
  char u[4];
  size_t n;
  if (cp < 0x80) {
    u[0] = (char)cp;
    n = 1;
  } else if (cp < 0x800) {
    u[0] = (char)(0xc0 | cp >> 6);
    u[1] = (char)(0x80 | (cp & 0x3f));
    n = 2;
  } else if (cp < 0x10000) {
    u[0] = (char)(0xe0 | cp >> 12);
    u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    u[2] = (char)(0x80 | (cp & 0x3f));
    n = 3;
  } else {
    u[0] = (char)(0xf0 | cp >> 18);
    u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    u[3] = (char)(0x80 | (cp & 0x3f));
    n = 4;
  }
  for (size_t i = 0; i < n; i++)
    if (sb_put(sb, u[i]))
      return -ENOMEM;
  return 0;
}

/* \uXXXX or \UXXXXXXXX, cursor on the u/U. */
static int unicode_escape(struct cur *c, struct sbuf *sb)
{
  size_t n = *c->p == 'u' ? 4 : 8;
  uint32_t cp = 0;
  c->p++;
  for (size_t i = 0; i < n; i++) {
    int h = kt_hexval(peek(c, i));
    if (h < 0)
      return fail(c, "\\%c needs %zu hex digits", n == 4 ? 'u' : 'U', n);
    cp = cp << 4 | (uint32_t)h;
  }
  c->p += n;
  if (cp == 0)
    return fail(c, "\\u0000 is not allowed in strings");
  if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return fail(c, "\\u escape is not a Unicode scalar value");
  return put_utf8(sb, cp);
}

/* One escape, cursor after the backslash. */
static int escape(struct cur *c, struct sbuf *sb)
{
  static const char from[] = "btnfr\"\\", to[] = "\b\t\n\f\r\"\\";
  int ch = peek(c, 0);
  if (ch == 'u' || ch == 'U')
    return unicode_escape(c, sb);
  const char *hit = ch > 0 ? strchr(from, ch) : NULL;
  if (!hit)
    return fail(c, "unknown escape sequence in string");
  c->p++;
  return sb_put(sb, to[hit - from]);
}

/* A "basic" or 'literal' single-line string, cursor on the quote. */
static int string(struct cur *c, char **out)
{
  char q = *c->p;
  struct sbuf sb = {0};
  int rc = 0;
  if (peek(c, 1) == q && peek(c, 2) == q)
    return fail(c, "multi-line strings are not supported");
  c->p++;
  if (sb_put(&sb, '\0'))
    return -ENOMEM;
  sb.len = 0;
  for (;;) {
    int ch = peek(c, 0);
    if (ch < 0 || ch == '\n' || ch == '\r') {
      rc = fail(c, "unterminated string");
      break;
    }
    if (ch == q) {
      c->p++;
      break;
    }
    if (is_ctl(ch)) {
      rc = fail(c, "control character in a string");
      break;
    }
    if (ch == '\\' && q == '"') {
      c->p++;
      rc = escape(c, &sb);
    } else {
      c->p++;
      rc = sb_put(&sb, (char)ch);
    }
    if (rc)
      break;
  }
  if (rc) {
    free(sb.b);
    return rc;
  }
  *out = sb.b;
  return 0;
}

/* ---- numbers and other scalars ---- */

static int is_delim(int ch)
{
  return ch < 0 || is_ctl(ch) || ch == ' ' || ch == '\t' || ch == '#' ||
         ch == ',' || ch == ']' || ch == '\n' || ch == '\r';
}

/* Digits with single underscores between them, copied without them.
 * Returns the number of digits, 0 when malformed. */
static size_t digits(const char **s, const char *e, char *out, size_t *o,
                     size_t cap)
{
  size_t n = 0;
  const char *p = *s;
  while (p < e && (is_digit(*p) || *p == '_')) {
    if (*p == '_' && (n == 0 || p + 1 >= e || !is_digit(p[1])))
      return 0;
    if (*p != '_') {
      if (*o + 1 >= cap)
        return 0;
      out[(*o)++] = *p;
      n++;
    }
    p++;
  }
  *s = p;
  return n;
}

/* TOML's decimal integer and float grammar over [s, e); *is_int tells
 * which. The digits go to out (NUL-terminated) for strtod. */
static int number_syntax(const char *s, const char *e, char *out, size_t cap,
                         int *is_int)
{
  size_t o = 0;
  if (s < e && (*s == '+' || *s == '-'))
    out[o++] = *s++;
  if (e - s == 3 && (memcmp(s, "inf", 3) == 0 || memcmp(s, "nan", 3) == 0)) {
    memcpy(out + o, s, 3);
    out[o + 3] = '\0';
    *is_int = 0;
    return 0;
  }
  const char *int_start = s;
  size_t n = digits(&s, e, out, &o, cap);
  if (n == 0 || (n > 1 && *int_start == '0'))
    return -1;
  *is_int = 1;
  if (s < e && *s == '.') {
    out[o++] = *s++;
    if (digits(&s, e, out, &o, cap) == 0)
      return -1;
    *is_int = 0;
  }
  if (s < e && (*s == 'e' || *s == 'E')) {
    out[o++] = *s++;
    if (s < e && (*s == '+' || *s == '-'))
      out[o++] = *s++;
    if (digits(&s, e, out, &o, cap) == 0)
      return -1;
    *is_int = 0;
  }
  if (s != e || o >= cap)
    return -1;
  out[o] = '\0';
  return 0;
}

static int number(struct cur *c, struct kt_toml_value *v)
{
  const char *s = c->p;
  while (!is_delim(peek(c, 0)))
    c->p++;
  size_t len = (size_t)(c->p - s);
  char buf[80];
  int is_int;
  if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o' || s[1] == 'b'))
    return fail(c, "hexadecimal, octal and binary integers are not supported");
  if (len >= 64 || number_syntax(s, c->p, buf, sizeof buf, &is_int)) {
    int show = len > 40 ? 40 : (int)len;
    return fail(c, "invalid value \"%.*s\" (strings need quotes)", show, s);
  }
  v->type = is_int ? KT_TOML_INT : KT_TOML_FLOAT;
  v->num = strtod(buf, NULL);
  if (is_int && (v->num > 9223372036854775807.0 ||
                 v->num < -9223372036854775808.0))
    return fail(c, "integer out of range");
  return 0;
}

static int word(struct cur *c, const char *w)
{
  size_t n = strlen(w);
  return (size_t)(c->end - c->p) >= n && memcmp(c->p, w, n) == 0 &&
         is_delim(peek(c, n));
}

/* A value that is not an array. */
static int scalar(struct cur *c, struct kt_toml_value *v)
{
  int ch = peek(c, 0);
  v->line = c->line;
  if (ch == '"' || ch == '\'') {
    v->type = KT_TOML_STRING;
    return string(c, &v->s);
  }
  if (ch == '{')
    return fail(c, "inline tables are not supported");
  if (ch == '[')
    return fail(c, "nested arrays are not supported");
  if (word(c, "true") || word(c, "false")) {
    v->type = KT_TOML_BOOL;
    v->b = *c->p == 't';
    c->p += v->b ? 4 : 5;
    return 0;
  }
  if (is_delim(ch))
    return fail(c, "missing value");
  return number(c, v);
}

static void free_value(struct kt_toml_value *v)
{
  free(v->s);
  for (size_t i = 0; i < v->nitems; i++)
    free_value(&v->items[i]);
  free(v->items);
  memset(v, 0, sizeof *v);
}

/* [a, b, ...], possibly over several lines; cursor on '['. */
static int array(struct cur *c, struct kt_toml_value *v)
{
  v->type = KT_TOML_ARRAY;
  v->line = c->line;
  c->p++;
  for (;;) {
    int rc = skip_space_lines(c);
    if (rc)
      return rc;
    if (peek(c, 0) == ']') {
      c->p++;
      return 0;
    }
    if (at_end(c))
      return fail(c, "unterminated array");
    if (v->nitems >= KT_TOML_MAX_ITEMS)
      return fail(c, "more than %d items in an array", KT_TOML_MAX_ITEMS);
    if (KT_GROW(v->items, v->_cap, v->nitems))
      return -ENOMEM;
    struct kt_toml_value *it = &v->items[v->nitems];
    memset(it, 0, sizeof *it);
    rc = scalar(c, it);
    v->nitems++; /* freed with the array even when half made */
    rc = rc ? rc : skip_space_lines(c);
    if (rc)
      return rc;
    if (peek(c, 0) == ',')
      c->p++;
    else if (peek(c, 0) != ']')
      return at_end(c) ? fail(c, "unterminated array")
                       : fail(c, "expected ',' or ']' in an array");
  }
}

/* ---- keys, headers, pairs ---- */

/* A bare or quoted key. */
static int key(struct cur *c, char **out)
{
  int ch = peek(c, 0);
  if (ch == '"' || ch == '\'')
    return string(c, out);
  const char *s = c->p;
  while (is_bare(peek(c, 0)))
    c->p++;
  if (c->p == s) {
    if (ch < 0 || ch == '\n' || ch == '\r')
      return fail(c, "missing key");
    if (is_ctl(ch) || ch >= 0x80)
      return fail(c, "unexpected character in a key");
    return fail(c, "unexpected '%c' where a key should be", ch);
  }
  size_t n = (size_t)(c->p - s);
  *out = malloc(n + 1);
  if (!*out)
    return -ENOMEM;
  memcpy(*out, s, n);
  (*out)[n] = '\0';
  return 0;
}

static struct kt_toml_table *current(struct cur *c)
{
  return &c->doc->tables[c->doc->ntables - 1];
}

/* The parent of a new [[name]]: the latest table named like name without
 * its last part. */
static int find_parent(struct cur *c, const char *name, int *parent)
{
  const char *dot = strrchr(name, '.');
  *parent = -1;
  if (!dot)
    return 0;
  size_t n = (size_t)(dot - name);
  for (size_t i = c->doc->ntables; i-- > 1;) {
    const char *t = c->doc->tables[i].name;
    if (strlen(t) == n && memcmp(t, name, n) == 0) {
      *parent = (int)i;
      return 0;
    }
  }
  return fail(c, "[[%s]] comes before any [[%.*s]]", name, (int)n, name);
}

static int add_table(struct cur *c, char *name, int line)
{
  int parent;
  int rc = find_parent(c, name, &parent);
  if (!rc && c->doc->ntables >= KT_TOML_MAX_TABLES)
    rc = fail(c, "more than %d tables", KT_TOML_MAX_TABLES);
  if (!rc && KT_GROW(c->doc->tables, c->doc->_cap, c->doc->ntables))
    rc = -ENOMEM;
  if (rc) {
    free(name);
    return rc;
  }
  struct kt_toml_table *t = &c->doc->tables[c->doc->ntables++];
  memset(t, 0, sizeof *t);
  t->name = name;
  t->line = line;
  t->parent = parent;
  return 0;
}

/* Appends ".part" (or "part" first) to the header name. */
static int name_append(struct sbuf *sb, const char *part)
{
  if (sb->len && sb_put(sb, '.'))
    return -ENOMEM;
  for (const char *p = part; *p; p++)
    if (sb_put(sb, *p))
      return -ENOMEM;
  return 0;
}

/* [[a.b]] */
static int header(struct cur *c)
{
  struct sbuf sb = {0};
  int rc = 0;
  if (peek(c, 1) != '[')
    return fail(c, "[table] headers are not supported, only [[arrays of "
                   "tables]]");
  c->p += 2;
  for (;;) {
    char *part = NULL;
    skip_ws(c);
    rc = key(c, &part);
    if (!rc && strchr(part, '.'))
      rc = fail(c, "a quoted table name may not contain '.'");
    if (!rc && !*part)
      rc = fail(c, "empty table name");
    rc = rc ? rc : name_append(&sb, part);
    free(part);
    if (rc)
      break;
    skip_ws(c);
    if (peek(c, 0) != '.')
      break;
    c->p++;
  }
  if (!rc && (peek(c, 0) != ']' || peek(c, 1) != ']'))
    rc = fail(c, "expected ]] to close the table header");
  if (rc) {
    free(sb.b);
    return rc;
  }
  c->p += 2;
  return add_table(c, sb.b, c->line);
}

static int add_pair(struct cur *c, char *k, int line, struct kt_toml_value *v)
{
  struct kt_toml_table *t = current(c);
  int rc = 0;
  for (size_t i = 0; i < t->npairs && !rc; i++)
    if (strcmp(t->pairs[i].key, k) == 0)
      rc = fail(c, "duplicate key \"%s\" (first at line %d)", k,
                t->pairs[i].line);
  if (!rc && t->npairs >= KT_TOML_MAX_PAIRS)
    rc = fail(c, "more than %d keys in a table", KT_TOML_MAX_PAIRS);
  if (!rc && KT_GROW(t->pairs, t->_cap, t->npairs))
    rc = -ENOMEM;
  if (rc) {
    free(k);
    free_value(v);
    return rc;
  }
  t->pairs[t->npairs++] = (struct kt_toml_pair){k, line, *v};
  return 0;
}

/* key = value */
static int pair(struct cur *c)
{
  char *k = NULL;
  int line = c->line;
  struct kt_toml_value v = {0};
  int rc = key(c, &k);
  if (rc)
    return rc;
  skip_ws(c);
  if (peek(c, 0) == '.')
    rc = fail(c, "dotted keys are not supported");
  else if (peek(c, 0) != '=')
    rc = fail(c, "expected '=' after key \"%s\"", k);
  if (!rc) {
    c->p++;
    skip_ws(c);
    rc = peek(c, 0) == '[' ? array(c, &v) : scalar(c, &v);
  }
  if (rc) {
    free(k);
    free_value(&v);
    return rc;
  }
  return add_pair(c, k, line, &v);
}

int kt_toml_parse(const char *text, size_t len, struct kt_toml_doc *doc,
                  int *line, char *err, size_t errlen)
{
  struct cur c = {text, text + len, 1, line, err, errlen, doc};
  memset(doc, 0, sizeof *doc);
  *line = 0;
  if (len > KT_TOML_MAX_TEXT) {
    *line = 1;
    snprintf(err, errlen, "larger than %u bytes", KT_TOML_MAX_TEXT);
    return -EINVAL;
  }
  int bad = utf8_bad_line(text, len);
  if (bad) {
    c.line = bad;
    return fail(&c, "invalid UTF-8");
  }
  char *root = calloc(1, 1);
  int rc = root ? add_table(&c, root, 0) : -ENOMEM;
  while (!rc && !at_end(&c)) {
    skip_ws(&c);
    int ch = peek(&c, 0);
    const char *what = "the start of the line";
    if (ch == '[') {
      rc = header(&c);
      what = "the table header";
    } else if (ch >= 0 && !is_ctl(ch) && ch != '#') {
      rc = pair(&c);
      what = "the value";
    }
    rc = rc ? rc : end_of_line(&c, what);
  }
  return rc;
}

void kt_toml_free(struct kt_toml_doc *doc)
{
  if (!doc)
    return;
  for (size_t i = 0; i < doc->ntables; i++) {
    struct kt_toml_table *t = &doc->tables[i];
    for (size_t j = 0; j < t->npairs; j++) {
      free(t->pairs[j].key);
      free_value(&t->pairs[j].v);
    }
    free(t->pairs);
    free(t->name);
  }
  free(doc->tables);
  memset(doc, 0, sizeof *doc);
}
