/* libFuzzer harness for kt_jparse, differential against cJSON: whatever
 * kt_jparse accepts, cJSON must accept and build the same tree (compared
 * by printing both); kt_jparse may refuse what cJSON tolerates (trailing
 * bytes, sloppy numbers), never the reverse on a strictly valid text. It
 * runs on the heap and, every other input, into an arena (kt_jmem). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json/kt_jmem.h"
#include "json/kt_jparse.h"

static void *heap(void *ud, size_t n)
{
  return cJSON_malloc(n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static int calls;
  const char *s = (const char *)data;
  size_t at;
  cJSON *mine;
  if (calls++ & 1) {
    kt_jmem_install();
    mine = kt_jmem_parse(s, size, &at);
  } else {
    mine = kt_jparse(s, size, heap, NULL, &at);
  }
  if (!mine) {
    if (at > size)
      abort(); /* the error offset is inside the text */
    return 0;
  }
  cJSON *ref = cJSON_ParseWithLength(s, size);
  if (!ref)
    abort(); /* accepted what cJSON refuses */
  char *a = cJSON_PrintUnformatted(mine), *b = cJSON_PrintUnformatted(ref);
  if (!a || !b || strcmp(a, b) != 0)
    abort(); /* a different tree */
  free(a);
  free(b);
  cJSON_Delete(ref);
  struct kt_jarena *arena = kt_jmem_arena_of(mine);
  cJSON_Delete(mine);
  kt_jmem_unref(arena);
  return 0;
}
