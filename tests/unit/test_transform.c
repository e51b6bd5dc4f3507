/* Display modes from the transform-config YAML: the shipped set (16
 * modes, names, ids, link selectors) and a user's file, plus clear errors
 * for bad ones. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "frontend/kt_modes.h"
#include "frontend/kt_transform.h"

static const struct kt_mode *find(const struct kt_tf_set *s, uint32_t id)
{
  for (size_t i = 0; i < s->nmodes; i++)
    if (s->modes[i].id == id)
      return &s->modes[i];
  return NULL;
}

static const char *const RS[5] = {"c", "apps", "replicasets", "default", "rs"};
static const char *const DEP[5] = {"c", "apps", "deployments", "default", "d"};

static int admit(const struct kt_mode *m, int first, int ups, int downs, int up,
                 const char *cls)
{
  struct kt_link_path p = {first, ups, downs};
  return kt_mode_admit(m, &p, up ? DEP : RS, up ? RS : DEP, up, cls);
}

static void test_shipped(void **state)
{
  struct kt_tf_set s;
  char err[256];
  assert_int_equal(kt_tf_load_default(&s, err, sizeof err), 0);
  assert_int_equal(s.nmodes, 16);
  assert_string_equal(s.modes[0].name, "tracing");
  assert_int_equal(s.modes[0].id, 0x20000000);
  assert_string_equal(find(&s, 0x21000000)->name, "tracing [full tree]");
  assert_string_equal(find(&s, 0x22000000)->name, "tracing [ancestors]");
  assert_string_equal(find(&s, 0x34000000)->name, "grouped [owned objects]");
  assert_string_equal(find(&s, 0x10000000)->name, "timeline");
  /* base modes follow no link */
  assert_false(admit(find(&s, 0x20000000), 0, 0, 0, 1, "children"));
  /* full tree: up and down to 3, no siblings (direction kept) */
  const struct kt_mode *full = find(&s, 0x21000000);
  assert_true(admit(full, 0, 0, 0, 1, "children"));
  assert_true(admit(full, 0, 0, 0, 0, ""));
  assert_false(admit(full, 1, 1, 0, 0, "children")); /* turn back down */
  assert_false(admit(full, 1, 3, 0, 1, "children")); /* distance */
  /* ancestors: owner links upward only */
  const struct kt_mode *anc = find(&s, 0x22000000);
  assert_true(admit(anc, 0, 0, 0, 1, "children"));
  assert_false(admit(anc, 0, 0, 0, 0, "children"));
  assert_false(admit(anc, 0, 0, 0, 1, "")); /* annotation links */
  /* owned objects: downward only */
  const struct kt_mode *own = find(&s, 0x04000000);
  assert_true(admit(own, 0, 0, 0, 0, "children"));
  assert_false(admit(own, 0, 0, 0, 1, "children"));
  kt_tf_free(&s);
}

static void test_user_file(void **state)
{
  const char *yaml =
      "defaultConfig: \"00000002\"\n"
      "configs:\n"
      "  - id: \"00000001\"\n    name: raw\n    steps: []\n"
      "  - id: \"00000002\"\n    name: flat\n    steps:\n"
      "      - {kind: Batch, batchName: b}\n"
      "batches:\n"
      "  - name: b\n    steps:\n"
      "      - {kind: PruneChildlessVisitor}\n"
      "      - {kind: ExtractNestingVisitor, matchesPseudoType: {oneOf: [object, linkClass]}}\n"
      "      - {kind: PruneTagsVisitor}\n"
      "modifiers:\n"
      "  \"00000100\":\n    displayName: pods\n    modifierName: link-selector\n"
      "    args:\n      modifierClass: x\n"
      "      ifAll: [{child: {resource: pods}}]\n";
  struct kt_tf_set s;
  char err[256];
  assert_int_equal(kt_tf_load_text(yaml, strlen(yaml), &s, err, sizeof err), 0);
  assert_int_equal(s.nmodes, 4);
  assert_string_equal(s.modes[0].name, "flat");
  assert_int_equal(s.modes[0].nsteps, 3);
  const struct kt_mode *pods = find(&s, 0x00000102);
  assert_non_null(pods);
  assert_string_equal(pods->name, "flat [pods]");
  /* the pattern: only links whose child is a pod */
  const char *const pod[5] = {"c", "", "pods", "default", "p"};
  struct kt_link_path p = {0, 0, 0};
  assert_true(kt_mode_admit(pods, &p, RS, pod, 0, "children"));
  assert_false(kt_mode_admit(pods, &p, DEP, RS, 0, "children"));
  kt_tf_free(&s);
}

static void test_errors(void **state)
{
  struct kt_tf_set s;
  char err[256];
  const char *bad[][2] = {
      {"configs: [\n", "line"},
      {"configs:\n  - {id: \"1\", name: x, steps: [{kind: Nope}]}\n", "unknown step kind Nope"},
      {"configs:\n  - {id: \"1\", name: x, steps: [{kind: Batch, batchName: zz}]}\n", "unknown batch zz"},
      {"configs: []\n", "no configs"},
      {"- a\n- b\n", "must be a mapping"},
      {"configs:\n  - {id: \"1\", name: x, steps: []}\nmodifiers:\n  \"2\": {modifierName: extension}\n",
       "unsupported modifier extension"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err[0] = 0;
    assert_int_not_equal(kt_tf_load_text(bad[i][0], strlen(bad[i][0]), &s, err, sizeof err), 0);
    assert_non_null(strstr(err, bad[i][1]));
  }
  assert_int_not_equal(kt_tf_load_file("/nonexistent/tf.yaml", &s, err, sizeof err), 0);
  /* keyed sections given as sequences (found by the fuzzer): no crash */
  const char *seq = "configs:\n  - {id: \"1\", name: x, steps: [{kind: CollapseNestingVisitor, "
                    "tagMappings: [a], logTypeMapping: [b]}]}\nmodifiers:\n  - {modifierName: x}\n";
  if (kt_tf_load_text(seq, strlen(seq), &s, err, sizeof err) == 0)
    kt_tf_free(&s);
  /* 32 configs and 4 modifiers of different classes: 512 combinations,
   * past the 256 modes the tables hold (found by the fuzzer) */
  char many[4096] = "configs:\n";
  for (int i = 0; i < 32; i++)
    snprintf(many + strlen(many), sizeof many - strlen(many),
             "  - {id: \"%x\", name: c%d, steps: []}\n", i + 1, i);
  strcat(many, "modifiers:\n");
  for (int i = 0; i < 4; i++)
    snprintf(many + strlen(many), sizeof many - strlen(many),
             "  \"%x\": {displayName: m%d, modifierName: link-selector, "
             "args: {modifierClass: k%d}}\n", 0x100 << i, i, i);
  err[0] = 0;
  assert_int_not_equal(kt_tf_load_text(many, strlen(many), &s, err, sizeof err), 0);
  assert_non_null(strstr(err, "more than 256 display modes"));
  char deep[300] = "x: ";
  for (int i = 0; i < 80; i++)
    strcat(deep, "[");
  for (int i = 0; i < 80; i++)
    strcat(deep, "]");
  assert_int_not_equal(kt_tf_load_text(deep, strlen(deep), &s, err, sizeof err), 0);
  assert_non_null(strstr(err, "nested too deeply"));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_shipped),
      cmocka_unit_test(test_user_file),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
