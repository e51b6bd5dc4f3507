/* kt_auth: see the header. */
#include "http/kt_auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void base64(const unsigned char *in, size_t n, char *out)
{
  static const char t[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = in[i] << 16 | (i + 1 < n ? in[i + 1] << 8 : 0) |
                 (i + 2 < n ? in[i + 2] : 0);
    out[o++] = t[v >> 18 & 63];
    out[o++] = t[v >> 12 & 63];
    out[o++] = i + 1 < n ? t[v >> 6 & 63] : '=';
    out[o++] = i + 2 < n ? t[v & 63] : '=';
  }
  out[o] = 0;
}

static int add(struct kt_auth *a, const char *prefix, const char *value)
{
  size_t len = strlen(prefix) + strlen(value) + 1;
  char **v = realloc(a->accepted, (a->n + 1) * sizeof *v);
  if (!v)
    return -ENOMEM;
  a->accepted = v;
  if (!(v[a->n] = malloc(len)))
    return -ENOMEM;
  snprintf(v[a->n++], len, "%s%s", prefix, value);
  return 0;
}

/* Reads non-empty, non-comment lines; basic lines become base64. */
static int load(struct kt_auth *a, const char *path, int basic, char *err,
                size_t errlen)
{
  FILE *f = fopen(path, "r");
  char line[1024], enc[1400];
  size_t before = a->n;
  int lineno = 0;
  if (!f) {
    snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
    return -errno;
  }
  while (fgets(line, sizeof line, f)) {
    lineno++;
    line[strcspn(line, "\r\n")] = 0;
    if (!line[0] || line[0] == '#')
      continue;
    if (basic && !strchr(line, ':')) {
      snprintf(err, errlen, "%s:%d: expected user:password", path, lineno);
      fclose(f);
      return -EINVAL;
    }
    if (basic)
      base64((const unsigned char *)line, strlen(line), enc);
    if (add(a, basic ? "Basic " : "Bearer ", basic ? enc : line)) {
      fclose(f);
      return -ENOMEM;
    }
  }
  fclose(f);
  if (a->n == before) {
    snprintf(err, errlen, "%s has no credentials", path);
    return -EINVAL;
  }
  a->basic |= basic;
  return 0;
}

int kt_auth_load(struct kt_auth *a, const char *token_file,
                 const char *basic_file, char *err, size_t errlen)
{
  memset(a, 0, sizeof *a);
  int rc = 0;
  if (token_file && *token_file)
    rc = load(a, token_file, 0, err, errlen);
  if (!rc && basic_file && *basic_file)
    rc = load(a, basic_file, 1, err, errlen);
  if (rc)
    kt_auth_free(a);
  return rc;
}

void kt_auth_free(struct kt_auth *a)
{
  for (size_t i = 0; i < a->n; i++)
    free(a->accepted[i]);
  free(a->accepted);
  memset(a, 0, sizeof *a);
}

int kt_auth_enabled(const struct kt_auth *a)
{
  return a && a->n > 0;
}

/* Constant time in the secret's length: no early exit on a mismatch. */
static int same(const char *secret, const char *given)
{
  size_t n = strlen(secret), m = strlen(given);
  unsigned char diff = n != m;
  for (size_t i = 0; i < n; i++)
    diff |= (unsigned char)(secret[i] ^ (i < m ? given[i] : 0));
  return diff == 0;
}

int kt_auth_allows(const struct kt_auth *a, const char *authorization)
{
  int ok = 0;
  if (!kt_auth_enabled(a))
    return 1;
  if (!authorization)
    return 0;
  for (size_t i = 0; i < a->n; i++)
    ok |= same(a->accepted[i], authorization);
  return ok;
}
