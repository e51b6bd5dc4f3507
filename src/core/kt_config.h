/* kt_config: command-line flags and the YAML config file, from one table.
 * A flag is --name=value or --name value (bools also bare --name); the
 * config file (--config FILE) is a YAML mapping with the same names as
 * keys, applied before the command line so that flags override it. */
#ifndef KT_CONFIG_H
#define KT_CONFIG_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum kt_flag_type { KT_STR, KT_INT, KT_BOOL, KT_DURATION, KT_SIZE };

struct kt_flag {
  const char *name;
  enum kt_flag_type type;
  const char *def; /* default, as text */
  const char *help;
  void *ptr;       /* char **, long *, int *, int64_t * (µs), size_t * */
};

/* Applies every default. 0 or -EINVAL (a bad default: a bug). */
int kt_config_defaults(const struct kt_flag *flags, size_t n);
/* Parses argv from index first; positional arguments are collected into
 * pos (up to maxpos; *npos set). On error writes a one-line reason into
 * err and returns -EINVAL. */
int kt_config_args(const struct kt_flag *flags, size_t n, int argc,
                   char **argv, int first, char **pos, int maxpos, int *npos,
                   char *err, size_t errlen);
/* Loads a YAML mapping file; unknown keys are errors (with line numbers). */
int kt_config_file(const struct kt_flag *flags, size_t n, const char *path,
                   char *err, size_t errlen);
/* The same from text; path only names it in errors. */
int kt_config_text(const struct kt_flag *flags, size_t n, const char *text,
                   size_t len, const char *path, char *err, size_t errlen);
void kt_config_usage(FILE *out, const struct kt_flag *flags, size_t n);
/* Sets one flag from text. */
int kt_config_set(const struct kt_flag *f, const char *value, char *err,
                  size_t errlen);

#endif
