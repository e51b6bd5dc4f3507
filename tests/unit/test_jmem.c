/* Arena-parsed documents and compact trees: what the webhook and the diff
 * cache rely on. Under ASan a released arena is poisoned, so a use after
 * the last reference fails these tests. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/kt_audit.h"
#include "json/kt_jmem.h"

static const char *doc =
    "{\"kind\":\"EventList\",\"apiVersion\":\"audit.k8s.io/v1\",\"items\":["
    "{\"auditID\":\"a1\",\"stage\":\"ResponseComplete\",\"verb\":\"update\","
    "\"user\":{\"username\":\"u\"},\"objectRef\":{\"resource\":\"pods\","
    "\"namespace\":\"ns\",\"name\":\"p\"},"
    "\"requestReceivedTimestamp\":\"2026-11-01T00:00:00.000000Z\","
    "\"stageTimestamp\":\"2026-11-01T00:00:00.100000Z\","
    "\"responseObject\":{\"metadata\":{\"name\":\"p\",\"labels\":{\"a\":\"\\u00e9\"}},"
    "\"spec\":{\"n\":[1,2.5,true,null,{\"x\":\"y\"}]}}},"
    "{\"auditID\":\"a2\",\"stage\":\"ResponseComplete\",\"verb\":\"delete\","
    "\"user\":{\"username\":\"u\"},\"objectRef\":{\"resource\":\"pods\","
    "\"namespace\":\"ns\",\"name\":\"q\"},"
    "\"requestReceivedTimestamp\":\"2026-11-01T00:00:01.000000Z\"}]}";

static size_t live_arenas(void)
{
  struct kt_jmem_stats s;
  kt_jmem_stats(&s);
  return s.arenas;
}

static int setup(void **state)
{
  return kt_jmem_install();
}

/* Events outlive the document they were cut from; the arena goes with the
 * last of them. */
static void test_events_keep_the_arena(void **state)
{
  size_t before = live_arenas();
  cJSON *root, *items;
  int single;
  char err[256];
  assert_int_equal(kt_audit_parse_doc(doc, strlen(doc), &root, &items, &single,
                                      err, sizeof err), KT_AUDIT_OK);
  assert_non_null(kt_jmem_arena_of(root));
  assert_int_equal(live_arenas(), before + 1);
  struct kt_audit_event ev[2];
  for (int i = 0; i < 2; i++)
    assert_int_equal(kt_audit_event_init(&ev[i], cJSON_DetachItemFromArray(items, 0),
                                         "c", err, sizeof err), KT_AUDIT_OK);
  kt_audit_doc_free(root, 1);
  assert_int_equal(live_arenas(), before + 1);
  /* A heap node added to an arena tree is freed with it (ASan: no leak). */
  cJSON_AddItemToObject(ev[0].json, "added", cJSON_CreateString("heap"));
  kt_audit_event_free(&ev[0]);
  assert_string_equal(ev[1].audit_id, "a2"); /* still readable */
  assert_string_equal(ev[1].verb, "delete");
  kt_audit_event_free(&ev[1]);
  assert_int_equal(live_arenas(), before);
}

/* A refused item gives its reference back too. */
static void test_refused_item_releases(void **state)
{
  size_t before = live_arenas();
  const char *bad = "{\"kind\":\"EventList\",\"items\":[{\"auditID\":\"x\"}]}";
  cJSON *root, *items;
  int single;
  char err[256];
  assert_int_equal(kt_audit_parse_doc(bad, strlen(bad), &root, &items, &single,
                                      err, sizeof err), KT_AUDIT_OK);
  struct kt_audit_event ev;
  assert_int_equal(kt_audit_event_init(&ev, cJSON_DetachItemFromArray(items, 0),
                                       "c", err, sizeof err), KT_AUDIT_MISSING_FIELD);
  kt_audit_doc_free(root, 1);
  assert_int_equal(live_arenas(), before);
  /* Malformed JSON leaves no arena behind either. */
  assert_int_equal(kt_audit_parse_doc("{\"kind\":", 8, &root, &items, &single,
                                      err, sizeof err), KT_AUDIT_BAD_JSON);
  assert_int_equal(live_arenas(), before);
}

/* A compact copy prints exactly as the original, lives on the heap, and
 * is a well-formed tree (appending to it keeps cJSON's tail pointer). */
static void test_compact_copy(void **state)
{
  size_t at;
  cJSON *root = kt_jmem_parse(doc, strlen(doc), &at);
  assert_non_null(root);
  const cJSON *obj = cJSON_GetObjectItem(cJSON_GetArrayItem(
      cJSON_GetObjectItem(root, "items"), 0), "responseObject");
  size_t bytes = 0;
  int heap = -1;
  cJSON *c = kt_jmem_compact(obj, &bytes, &heap);
  assert_int_equal(heap, 0); /* all arena: nothing for cJSON_Delete */
  assert_non_null(c);
  assert_null(kt_jmem_arena_of(c));
  assert_true(bytes > 0);
  char *a = cJSON_PrintUnformatted(obj), *b = cJSON_PrintUnformatted(c);
  assert_string_equal(a, b);
  assert_null(c->string); /* the root alone, not its key in the parent */
  assert_null(c->next);
  cJSON *n = cJSON_GetObjectItem(cJSON_GetObjectItem(c, "spec"), "n");
  assert_int_equal(cJSON_GetArraySize(n), 5);
  assert_ptr_equal(n->child->prev, cJSON_GetArrayItem(n, 4));
  cJSON *dup = cJSON_Duplicate(c, 1); /* an ordinary tree again */
  cJSON_AddItemToArray(cJSON_GetObjectItem(cJSON_GetObjectItem(dup, "spec"), "n"),
                       cJSON_CreateNumber(7));
  char *d = cJSON_PrintUnformatted(dup);
  assert_non_null(strstr(d, "{\"x\":\"y\"},7]"));
  free(a);
  free(b);
  free(d);
  cJSON_Delete(dup);
  free(c);
  /* A heap node in an arena tree: the tree must still be cJSON_Deleted. */
  cJSON_AddItemToObject((cJSON *)obj, "h", cJSON_CreateString("heap"));
  c = kt_jmem_compact(obj, NULL, &heap);
  assert_int_equal(heap, 1);
  free(c);
  kt_audit_doc_free(root, 1);
}

/* A tree with more strings than the copy remembers the lengths of (1024):
 * the rest are measured again and the copy is still exact. */
static void test_compact_large(void **state)
{
  cJSON *big = cJSON_CreateObject();
  for (int i = 0; i < 1500; i++) {
    char k[32], v[48];
    snprintf(k, sizeof k, "key-%d", i);
    snprintf(v, sizeof v, "%.*s", 1 + i % 40, "value-value-value-value-value-value-value");
    cJSON_AddStringToObject(big, k, v);
  }
  cJSON_AddItemToObject(big, "tail", cJSON_CreateStringArray(
      (const char *const[]){"a", "bb", "ccc"}, 3));
  cJSON *c = kt_jmem_compact(big, NULL, NULL);
  assert_non_null(c);
  char *a = cJSON_PrintUnformatted(big), *b = cJSON_PrintUnformatted(c);
  assert_string_equal(a, b);
  free(a);
  free(b);
  free(c);
  cJSON_Delete(big);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_events_keep_the_arena),
      cmocka_unit_test(test_refused_item_releases),
      cmocka_unit_test(test_compact_copy),
      cmocka_unit_test(test_compact_large),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
