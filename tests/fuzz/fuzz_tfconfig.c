/* libFuzzer harness for the transform-config loader (YAML from
 * --jaeger-transform-config-file): any bytes must load or fail with a
 * reason, never crash or leak. */
#include <stddef.h>
#include <stdint.h>

#include "frontend/kt_transform.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct kt_tf_set s;
  char err[256];
  if (kt_tf_load_text((const char *)data, size, &s, err, sizeof err) == 0)
    kt_tf_free(&s);
  return 0;
}
