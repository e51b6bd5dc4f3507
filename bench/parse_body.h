/* parse_body.h: the parse-only baseline's unit of work, shared by
 * bench_parse (in memory) and bench_parse_server (over HTTP): one webhook
 * body parsed — with cJSON's own parser on the heap (stock) or with the
 * webhook's (kt_jparse into an arena) — and every event validated, as the
 * webhook does before queueing. Each bench .c is its own binary, so this
 * is a header of one static function. */
#ifndef BENCH_PARSE_BODY_H
#define BENCH_PARSE_BODY_H
#include <stddef.h>

#include "audit/kt_audit.h"

/* The events validated, or -1 when the body is not an EventList. */
static long parse_body(const char *data, size_t len, int stock)
{
  char err[256];
  cJSON *root, *items;
  int single = 0;
  if (stock) {
    root = cJSON_ParseWithLength(data, len);
    items = cJSON_GetObjectItemCaseSensitive(root, "items");
    if (!cJSON_IsArray(items)) {
      cJSON_Delete(root);
      return -1;
    }
  } else if (kt_audit_parse_doc(data, len, &root, &items, &single, err,
                                sizeof err) != KT_AUDIT_OK) {
    return -1;
  }
  long n = 0;
  while (!single && cJSON_GetArraySize(items) > 0) {
    struct kt_audit_event ev;
    cJSON *it = cJSON_DetachItemFromArray(items, 0);
    if (kt_audit_event_init(&ev, it, "bench", err, sizeof err) == KT_AUDIT_OK)
      n++;
    kt_audit_event_free(&ev);
  }
  kt_audit_doc_free(root, 1);
  return n;
}

#endif
