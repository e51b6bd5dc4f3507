/* libFuzzer harness for watch-stream lines (what an apiserver, or anything
 * pretending to be one, sends on a watch): each input is split into lines
 * fed to one reflector that keeps full objects, so sequences of events
 * (added, modified, deleted, bookmarks, errors) on the same objects are
 * exercised, including the old-state parsing of modifications. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "k8s/kt_reflector.h"

static void change(void *ud, enum kt_change type, const cJSON *old,
                   const cJSON *obj, int initial)
{
  /* touch what a controller would read */
  const cJSON *o = obj ? obj : old;
  if (o)
    (void)cJSON_GetObjectItem(cJSON_GetObjectItem(o, "metadata"), "resourceVersion");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *buf = malloc(size + 1);
  if (!buf)
    return 0;
  memcpy(buf, data, size);
  buf[size] = 0;
  struct kt_reflector_opts o = {.path = "/api/v1/pods", .keep_objects = 1};
  struct kt_reflector_ops ops = {NULL, change};
  struct kt_reflector *r = kt_reflector_offline(&o, &ops, NULL);
  for (char *p = buf, *nl; r && p < buf + size; p = nl + 1) {
    nl = memchr(p, '\n', (size_t)(buf + size - p));
    if (!nl)
      nl = buf + size;
    *nl = 0;
    if (nl > p)
      kt_reflector_feed(r, p, (size_t)(nl - p));
  }
  kt_reflector_stop(r);
  free(buf);
  return 0;
}
