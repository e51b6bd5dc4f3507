/* libFuzzer harness for the YAML config file (--config): any bytes load
 * into a flag table of every type or fail with a reason; never a crash or
 * a leak. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/kt_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static char *s;
  static long i;
  static int b;
  static int64_t d;
  static size_t z;
  const struct kt_flag flags[] = {
      {"log-level", KT_STR, "info", "", &s},   {"workers", KT_INT, "2", "", &i},
      {"serve", KT_BOOL, "false", "", &b},     {"ttl", KT_DURATION, "30m", "", &d},
      {"limit", KT_SIZE, "64Mi", "", &z},
  };
  char err[256];
  kt_config_defaults(flags, 5);
  kt_config_text(flags, 5, (const char *)data, size, "fuzz", err, sizeof err);
  free(s);
  s = NULL;
  return 0;
}
