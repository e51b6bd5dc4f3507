/* kt_config: see the header. */
#include "core/kt_config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "core/kt_time.h"

static int parse_size(const char *s, size_t *out)
{
  char *end;
  double v = strtod(s, &end);
  if (end == s || v < 0)
    return -EINVAL;
  static const struct { const char *u; double m; } units[] = {
      {"", 1}, {"k", 1e3}, {"K", 1e3}, {"Ki", 1024}, {"M", 1e6},
      {"Mi", 1048576}, {"G", 1e9}, {"Gi", 1073741824.0}};
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    if (strcmp(end, units[i].u) == 0) {
      *out = (size_t)(v * units[i].m);
      return 0;
    }
  }
  return -EINVAL;
}

int kt_config_set(const struct kt_flag *f, const char *v, char *err,
                  size_t errlen)
{
  char *end;
  int rc = 0;
  switch (f->type) {
  case KT_STR: {
    char *copy = strdup(v);
    if (!copy)
      return -ENOMEM;
    free(*(char **)f->ptr);
    *(char **)f->ptr = copy;
    break;
  }
  case KT_INT:
    *(long *)f->ptr = strtol(v, &end, 10);
    rc = (*v && !*end) ? 0 : -EINVAL;
    break;
  case KT_BOOL:
    if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes"))
      *(int *)f->ptr = 1;
    else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no"))
      *(int *)f->ptr = 0;
    else
      rc = -EINVAL;
    break;
  case KT_DURATION:
    rc = kt_duration_parse(v, (int64_t *)f->ptr);
    break;
  case KT_SIZE:
    rc = parse_size(v, (size_t *)f->ptr);
    break;
  }
  if (rc)
    snprintf(err, errlen, "invalid value %s for --%s", v, f->name);
  return rc;
}

int kt_config_defaults(const struct kt_flag *flags, size_t n)
{
  char err[256];
  for (size_t i = 0; i < n; i++)
    if (kt_config_set(&flags[i], flags[i].def, err, sizeof err))
      return -EINVAL;
  return 0;
}

static const struct kt_flag *find(const struct kt_flag *flags, size_t n,
                                  const char *name, size_t len)
{
  for (size_t i = 0; i < n; i++)
    if (strlen(flags[i].name) == len && strncmp(flags[i].name, name, len) == 0)
      return &flags[i];
  return NULL;
}

int kt_config_args(const struct kt_flag *flags, size_t n, int argc,
                   char **argv, int first, char **pos, int maxpos, int *npos,
                   char *err, size_t errlen)
{
  *npos = 0;
  for (int i = first; i < argc; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--", 2) != 0 || !a[2]) {
      if (*npos >= maxpos) {
        snprintf(err, errlen, "unexpected argument %s", a);
        return -EINVAL;
      }
      pos[(*npos)++] = argv[i];
      continue;
    }
    const char *name = a + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const struct kt_flag *f = find(flags, n, name, len);
    if (!f) {
      snprintf(err, errlen, "unknown flag --%.*s (see --help)", (int)len, name);
      return -EINVAL;
    }
    const char *v = eq ? eq + 1 : NULL;
    if (!v && f->type == KT_BOOL)
      v = "true";
    if (!v && i + 1 < argc)
      v = argv[++i];
    if (!v) {
      snprintf(err, errlen, "--%s needs a value", f->name);
      return -EINVAL;
    }
    if (kt_config_set(f, v, err, errlen))
      return -EINVAL;
  }
  return 0;
}

/* Reads scalar events as alternating key/value of one flat mapping. */
int kt_config_file(const struct kt_flag *flags, size_t n, const char *path,
                   char *err, size_t errlen)
{
  FILE *fp = fopen(path, "rb");
  if (!fp) {
    snprintf(err, errlen, "cannot open config %s: %s", path, strerror(errno));
    return -errno;
  }
  char *text = malloc(1 << 20);
  size_t len = text ? fread(text, 1, 1 << 20, fp) : 0;
  fclose(fp);
  if (!text)
    return -ENOMEM;
  int rc = kt_config_text(flags, n, text, len, path, err, errlen);
  free(text);
  return rc;
}

int kt_config_text(const struct kt_flag *flags, size_t n, const char *text,
                   size_t len, const char *path, char *err, size_t errlen)
{
  yaml_parser_t p;
  yaml_event_t ev;
  yaml_parser_initialize(&p);
  yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
  char key[256] = "";
  int depth = 0, rc = 0, done = 0;
  while (!done && !rc) {
    if (!yaml_parser_parse(&p, &ev)) {
      snprintf(err, errlen, "%s:%zu: %s", path, p.problem_mark.line + 1,
               p.problem ? p.problem : "YAML error");
      rc = -EINVAL;
      break;
    }
    switch (ev.type) {
    case YAML_MAPPING_START_EVENT:
      depth++;
      if (depth > 1) {
        snprintf(err, errlen, "%s:%zu: nested values are not supported",
                 path, ev.start_mark.line + 1);
        rc = -EINVAL;
      }
      break;
    case YAML_SCALAR_EVENT: {
      const char *v = (const char *)ev.data.scalar.value;
      if (!key[0]) {
        snprintf(key, sizeof key, "%s", v);
        break;
      }
      const struct kt_flag *f = find(flags, n, key, strlen(key));
      if (!f) {
        snprintf(err, errlen, "%s:%zu: unknown key %s", path,
                 ev.start_mark.line + 1, key);
        rc = -EINVAL;
      } else if (kt_config_set(f, v, err, errlen)) {
        rc = -EINVAL;
      }
      key[0] = 0;
      break;
    }
    case YAML_SEQUENCE_START_EVENT:
      snprintf(err, errlen, "%s:%zu: lists are written as a,b,c", path,
               ev.start_mark.line + 1);
      rc = -EINVAL;
      break;
    case YAML_STREAM_END_EVENT:
      done = 1;
      break;
    default:
      break;
    }
    yaml_event_delete(&ev);
  }
  yaml_parser_delete(&p);
  return rc;
}

void kt_config_usage(FILE *out, const struct kt_flag *flags, size_t n)
{
  static const char *types[] = {"string", "int", "bool", "duration", "size"};
  for (size_t i = 0; i < n; i++)
    fprintf(out, "  --%s %s (default \"%s\")\n      %s\n", flags[i].name,
            types[flags[i].type], flags[i].def, flags[i].help);
}
