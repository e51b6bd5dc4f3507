/* libFuzzer harness for the kelemetrix config (--kelemetrix-config-path):
 * any bytes either load (TOML subset, schema, regexes, registration into a
 * private registry) or fail with a "path:line: reason"; never a crash or a
 * leak. A loaded config then observes one fixed event, so the filters and
 * emission run on whatever the input configured. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "audit/kt_audit.h"
#include "core/kt_metrics.h"
#include "kelemetrix/kt_kelemetrix.h"

static const char event[] =
    "{\"kind\":\"Event\",\"apiVersion\":\"audit.k8s.io/v1\",\"auditID\":\"f\","
    "\"stage\":\"ResponseComplete\",\"verb\":\"list\",\"requestURI\":"
    "\"/api/v1/pods?resourceVersion=0&timeoutSeconds=5&labelSelector=a\","
    "\"user\":{\"username\":\"system:node:n\"},\"sourceIPs\":[\"1.2.3.4\"],"
    "\"objectRef\":{\"resource\":\"pods\",\"apiVersion\":\"v1\"},"
    "\"responseStatus\":{\"code\":404,\"reason\":\"NotFound\"},"
    "\"requestReceivedTimestamp\":\"2026-01-01T00:00:00Z\","
    "\"stageTimestamp\":\"2026-01-01T00:00:01Z\"}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct kt_metrics *r = kt_metrics_new();
  struct kt_kelemetrix_opts o = {"fuzz=30s", 0, 0, r};
  struct kt_kelemetrix *k = NULL;
  char err[512];
  if (!r)
    return 0;
  if (kt_kelemetrix_load((const char *)data, size, "fuzz.toml", &o, &k, err,
                         sizeof err) == 0) {
    struct kt_audit_event ev;
    if (kt_audit_event_init(&ev, cJSON_Parse(event), "fuzz", err,
                            sizeof err) == KT_AUDIT_OK) {
      kt_kelemetrix_observe_at(k, &ev, "5.6.7.8", 1767225602000000LL);
      kt_audit_event_free(&ev);
    }
    free(kt_metrics_render(r, NULL));
    kt_kelemetrix_free(k);
  }
  kt_metrics_free(r);
  return 0;
}
