/* libFuzzer harness for the structural diff and its rendering: the input
 * is two JSON documents separated by a NUL byte (or the same document
 * twice), diffed both ways. Must never crash, leak or report a difference
 * between a document and itself, and the rendering (which prints common
 * values itself) must equal the lines built with cJSON's own printer. */
#define _GNU_SOURCE /* asprintf */
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json/kt_diff.h"

/* The lines as cJSON would print them. */
static char *reference(const struct kt_diff_list *l)
{
  size_t cap = 1, len = 0;
  char *out = NULL;
  for (size_t i = 0; i <= l->n; i++) {
    char *o = NULL, *n = NULL, *line = NULL;
    if (i < l->n) {
      o = l->v[i].old_v ? cJSON_PrintUnformatted(l->v[i].old_v) : strdup("null");
      n = l->v[i].new_v ? cJSON_PrintUnformatted(l->v[i].new_v) : strdup("null");
      if (asprintf(&line, "%s %s -> %s\n", l->v[i].path, o, n) < 0)
        abort();
    } else {
      line = strdup(l->truncated ? "... (diff truncated)\n" : "");
    }
    cap += strlen(line);
    out = realloc(out, cap);
    memcpy(out + len, line, strlen(line) + 1);
    len += strlen(line);
    free(o);
    free(n);
    free(line);
  }
  return out;
}

static void diff_once(const cJSON *a, const cJSON *b)
{
  struct kt_diff_list l;
  kt_diff_list_init(&l, 64);
  kt_diff_compare(a, b, &l);
  char *got = kt_diff_render(&l), *want = reference(&l);
  if (got && strcmp(got, want) != 0)
    abort(); /* the fast printer disagrees with cJSON */
  free(got);
  free(want);
  cJSON_Delete(kt_diff_to_json(&l));
  kt_diff_list_free(&l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const char *s = (const char *)data;
  const char *nul = memchr(s, 0, size);
  size_t alen = nul ? (size_t)(nul - s) : size;
  cJSON *a = cJSON_ParseWithLength(s, alen);
  cJSON *b = nul ? cJSON_ParseWithLength(nul + 1, size - alen - 1) : NULL;
  if (a) {
    struct kt_diff_list self;
    kt_diff_list_init(&self, 0);
    kt_diff_compare(a, a, &self);
    if (self.n != 0)
      abort(); /* a document differs from itself */
    kt_diff_list_free(&self);
  }
  if (a && b) {
    diff_once(a, b);
    diff_once(b, a);
  }
  cJSON_Delete(a);
  cJSON_Delete(b);
  return 0;
}
