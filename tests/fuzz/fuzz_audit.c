/* libFuzzer harness for the outside input of the webhook and replay: any
 * byte string through kt_audit_parse_doc and, per item, kt_audit_event_init
 * and the object-key and name helpers. Must never crash or leak. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit/kt_audit.h"
#include "diff/kt_decorator.h"
#include "json/kt_jmem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  cJSON *root, *items;
  int single;
  char err[256], key[1024];
  kt_jmem_install(); /* the webhook's allocator: arenas */
  if (kt_audit_parse_doc((const char *)data, size, &root, &items, &single,
                         err, sizeof err) != KT_AUDIT_OK)
    return 0;
  int n = single ? 1 : cJSON_GetArraySize(items);
  for (int i = 0; i < n; i++) {
    cJSON *item = single ? items : cJSON_DetachItemFromArray(items, 0);
    struct kt_audit_event ev;
    if (kt_audit_event_init(&ev, item, "fuzz", err, sizeof err) != KT_AUDIT_OK)
      continue;
    kt_audit_object_key(&ev, key, sizeof key);
    cJSON *body = kt_decorator_body(&ev);
    if (body)
      kt_decorator_sanitize(body, ev.api_group, ev.resource);
    kt_audit_event_free(&ev);
  }
  kt_audit_doc_free(root, !single);
  return 0;
}
