/* kt_transform: see the header. YAML is first turned into a cJSON tree
 * (kt_yaml), then read with the same helpers whatever the source. */
#include "frontend/kt_transform.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "json/kt_yaml.h"

/* ---- readers ------------------------------------------------------------- */

/* A member that must be a mapping; anything else reads as empty, so keyed
 * iteration never meets an item without a key. */
static const cJSON *mapping(const cJSON *o, const char *k)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsObject(v) ? v : NULL;
}

static const char *str(const cJSON *o, const char *k)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int boolean(const cJSON *o, const char *k, int def)
{
  const char *v = str(o, k);
  if (!v)
    return def;
  return !strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "1");
}

static int integer(const cJSON *o, const char *k, int def)
{
  const char *v = str(o, k);
  return v ? atoi(v) : def;
}

static char **str_list(const cJSON *arr, size_t *n)
{
  size_t cnt = (size_t)cJSON_GetArraySize(arr), i = 0;
  char **v = calloc(cnt ? cnt : 1, sizeof *v);
  const cJSON *it;
  cJSON_ArrayForEach(it, arr)
    if (cJSON_IsString(it) && v)
      v[i++] = strdup(it->valuestring);
  *n = v ? i : 0;
  return v;
}

static int parse_filter(const cJSON *j, struct kt_strfilter *f, char *err,
                        size_t errlen)
{
  memset(f, 0, sizeof *f);
  f->then = 1;
  if (!j)
    return 0;
  if (cJSON_IsString(j)) {
    f->kind = KT_SF_EXACT;
    f->values = calloc(1, sizeof *f->values);
    f->values[0] = strdup(j->valuestring);
    f->nvalues = 1;
    return 0;
  }
  f->then = boolean(j, "then", 1) && !boolean(j, "negate", 0);
  const cJSON *one = cJSON_GetObjectItemCaseSensitive(j, "oneOf");
  if (str(j, "exact")) {
    f->kind = KT_SF_EXACT;
    f->values = calloc(1, sizeof *f->values);
    f->values[0] = strdup(str(j, "exact"));
    f->nvalues = 1;
  } else if (str(j, "caseInsensitive")) {
    f->kind = KT_SF_ICASE;
    f->values = calloc(1, sizeof *f->values);
    f->values[0] = strdup(str(j, "caseInsensitive"));
    f->nvalues = 1;
  } else if (str(j, "regex")) {
    f->kind = KT_SF_REGEX;
    if (regcomp(&f->re, str(j, "regex"), REG_EXTENDED | REG_NOSUB)) {
      snprintf(err, errlen, "invalid regex %s", str(j, "regex"));
      f->kind = KT_SF_ANY;
      return -EINVAL;
    }
  } else if (cJSON_IsArray(one)) {
    f->kind = KT_SF_ONEOF;
    f->values = str_list(one, &f->nvalues);
  }
  return 0;
}

int kt_strfilter_match(const struct kt_strfilter *f, const char *s)
{
  int m = 1;
  s = s ? s : "";
  switch (f->kind) {
  case KT_SF_ANY:
    m = 1;
    break;
  case KT_SF_EXACT:
    m = !strcmp(f->values[0], s);
    break;
  case KT_SF_ICASE: /* the original always matched here (§9.9): we compare */
    m = !strcasecmp(f->values[0], s);
    break;
  case KT_SF_REGEX:
    m = !regexec(&f->re, s, 0, NULL, 0);
    break;
  case KT_SF_ONEOF:
    m = 0;
    for (size_t i = 0; i < f->nvalues && !m; i++)
      m = !strcmp(f->values[i], s);
    break;
  }
  return f->then ? m : !m;
}

static void free_strs(char **v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free(v[i]);
  free(v);
}

static void free_filter(struct kt_strfilter *f)
{
  free_strs(f->values, f->nvalues);
  if (f->kind == KT_SF_REGEX)
    regfree(&f->re);
}

/* ---- steps ------------------------------------------------------------- */

static const struct {
  const char *name;
  enum kt_step_kind kind;
} kinds[] = {
    {"PruneChildlessVisitor", KT_STEP_PRUNE_CHILDLESS},
    {"ReplaceNameVisitor", KT_STEP_REPLACE_NAME},
    {"ObjectTagsVisitor", KT_STEP_OBJECT_TAGS},
    {"ServiceOperationReplaceVisitor", KT_STEP_SVC_OP_REPLACE},
    {"ClusterNameVisitor", KT_STEP_CLUSTER_NAME},
    {"PruneTagsVisitor", KT_STEP_PRUNE_TAGS},
    {"CollapseNestingVisitor", KT_STEP_COLLAPSE},
    {"ExtractNestingVisitor", KT_STEP_EXTRACT},
    {"CompactDurationVisitor", KT_STEP_COMPACT},
    {"GroupByTraceSourceVisitor", KT_STEP_GROUP},
};

static void parse_collapse(const cJSON *j, struct kt_step *s)
{
  const cJSON *src, *m, *cls;
  cJSON_ArrayForEach(src, mapping(j, "tagMappings"))
    cJSON_ArrayForEach(m, src) {
      if (!src->string)
        continue;
      s->maps = realloc(s->maps, (s->nmaps + 1) * sizeof *s->maps);
      s->maps[s->nmaps].src = strdup(src->string);
      s->maps[s->nmaps].from = strdup(str(m, "fromSpanTag") ? str(m, "fromSpanTag") : "");
      s->maps[s->nmaps].to = strdup(str(m, "toLogField") ? str(m, "toLogField") : "");
      s->nmaps++;
    }
  const cJSON *dc = cJSON_GetObjectItemCaseSensitive(j, "auditDiffClasses");
  const cJSON *def = cJSON_GetObjectItemCaseSensitive(dc, "default");
  s->classes = calloc(1, sizeof *s->classes);
  s->classes[0] = (struct kt_diff_class){strdup(str(def, "name") ? str(def, "name") : "diff"),
                                         boolean(def, "shouldDisplay", 1), integer(def, "priority", 0)};
  s->nclasses = 1;
  cJSON_ArrayForEach(cls, cJSON_GetObjectItemCaseSensitive(dc, "fields")) {
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(cls, "class"), *f;
    s->classes = realloc(s->classes, (s->nclasses + 1) * sizeof *s->classes);
    s->classes[s->nclasses] = (struct kt_diff_class){
        strdup(str(c, "name") ? str(c, "name") : ""), boolean(c, "shouldDisplay", 1),
        integer(c, "priority", 0)};
    cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(cls, "fields")) {
      if (!cJSON_IsString(f))
        continue;
      s->prefixes = realloc(s->prefixes, (s->nprefixes + 1) * sizeof *s->prefixes);
      s->prefixes[s->nprefixes].prefix = strdup(f->valuestring);
      s->prefixes[s->nprefixes].cls = s->nclasses;
      s->nprefixes++;
    }
    s->nclasses++;
  }
  cJSON_ArrayForEach(m, mapping(j, "logTypeMapping")) {
    if (!m->string)
      continue;
    s->logmaps = realloc(s->logmaps, (s->nlogmaps + 1) * sizeof *s->logmaps);
    s->logmaps[s->nlogmaps].type = strdup(m->string);
    s->logmaps[s->nlogmaps].field = strdup(cJSON_IsString(m) ? m->valuestring : "");
    s->nlogmaps++;
  }
}

static struct kt_step *parse_step(const cJSON *j, char *err, size_t errlen)
{
  const char *kind = str(j, "kind");
  struct kt_step *s = calloc(1, sizeof *s);
  size_t k = 0;
  while (k < sizeof kinds / sizeof kinds[0] && (!kind || strcmp(kinds[k].name, kind)))
    k++;
  if (!s || k == sizeof kinds / sizeof kinds[0]) {
    snprintf(err, errlen, "unknown step kind %s", kind ? kind : "(none)");
    free(s);
    return NULL;
  }
  s->kind = kinds[k].kind;
  const cJSON *filter = NULL;
  switch (s->kind) {
  case KT_STEP_OBJECT_TAGS:
    s->strs = str_list(cJSON_GetObjectItemCaseSensitive(j, "resourceTags"), &s->nstrs);
    break;
  case KT_STEP_SVC_OP_REPLACE:
    s->trace_source = strdup(str(j, "traceSource") ? str(j, "traceSource") : "");
    s->dest_operation = str(j, "dest") && !strcmp(str(j, "dest"), "operation");
    s->strs = str_list(cJSON_GetObjectItemCaseSensitive(j, "source"), &s->nstrs);
    break;
  case KT_STEP_COLLAPSE:
    filter = cJSON_GetObjectItemCaseSensitive(j, "shouldCollapse");
    parse_collapse(j, s);
    break;
  case KT_STEP_EXTRACT:
    filter = cJSON_GetObjectItemCaseSensitive(j, "matchesPseudoType");
    if (!filter) /* the older key */
      filter = cJSON_GetObjectItemCaseSensitive(j, "matchesNestLevel");
    break;
  case KT_STEP_GROUP:
    filter = cJSON_GetObjectItemCaseSensitive(j, "shouldBeGrouped");
    break;
  default:
    break;
  }
  if (parse_filter(filter, &s->filter, err, errlen)) {
    free(s);
    return NULL;
  }
  return s;
}

static void free_step(struct kt_step *s)
{
  if (!s)
    return;
  free_strs(s->strs, s->nstrs);
  free(s->trace_source);
  free_filter(&s->filter);
  for (size_t i = 0; i < s->nmaps; i++) {
    free(s->maps[i].src);
    free(s->maps[i].from);
    free(s->maps[i].to);
  }
  free(s->maps);
  for (size_t i = 0; i < s->nclasses; i++)
    free(s->classes[i].name);
  free(s->classes);
  for (size_t i = 0; i < s->nprefixes; i++)
    free(s->prefixes[i].prefix);
  free(s->prefixes);
  for (size_t i = 0; i < s->nlogmaps; i++) {
    free(s->logmaps[i].type);
    free(s->logmaps[i].field);
  }
  free(s->logmaps);
  free(s);
}

/* ---- configs, batches, modifiers ---------------------------------------- */

static int add_ptr(void ***v, size_t *n, void *p)
{
  void **nv = realloc(*v, (*n + 1) * sizeof *nv);
  if (!nv)
    return -ENOMEM;
  nv[(*n)++] = p;
  *v = nv;
  return 0;
}

/* Appends the steps of a list to a mode, expanding Batch references. */
static int add_steps(struct kt_tf_set *set, struct kt_mode *m,
                     const cJSON *steps, const cJSON *batches, int depth,
                     char *err, size_t errlen)
{
  const cJSON *j, *b;
  cJSON_ArrayForEach(j, steps) {
    const char *kind = str(j, "kind");
    if (kind && !strcmp(kind, "Batch")) {
      const char *name = str(j, "batchName");
      const cJSON *found = NULL;
      cJSON_ArrayForEach(b, batches)
        if (name && str(b, "name") && !strcmp(str(b, "name"), name))
          found = b;
      if (!found || depth > 8) {
        snprintf(err, errlen, "unknown batch %s", name ? name : "(none)");
        return -EINVAL;
      }
      if (add_steps(set, m, cJSON_GetObjectItemCaseSensitive(found, "steps"),
                    batches, depth + 1, err, errlen))
        return -EINVAL;
      continue;
    }
    struct kt_step *s = parse_step(j, err, errlen);
    if (!s || add_ptr((void ***)&set->steps, &set->nsteps, s) ||
        add_ptr((void ***)&m->steps, &m->nsteps, s)) {
      free_step(s);
      return -EINVAL;
    }
  }
  return 0;
}

static void parse_objfilter(const cJSON *j, struct kt_objfilter *f, char *err,
                            size_t errlen)
{
  parse_filter(cJSON_GetObjectItemCaseSensitive(j, "cluster"), &f->cluster, err, errlen);
  parse_filter(cJSON_GetObjectItemCaseSensitive(j, "group"), &f->group, err, errlen);
  parse_filter(cJSON_GetObjectItemCaseSensitive(j, "resource"), &f->resource, err, errlen);
  parse_filter(cJSON_GetObjectItemCaseSensitive(j, "namespace"), &f->ns, err, errlen);
  parse_filter(cJSON_GetObjectItemCaseSensitive(j, "name"), &f->name, err, errlen);
}

static struct kt_link_selector *parse_selector(const cJSON *args, char *err,
                                               size_t errlen)
{
  struct kt_link_selector *s = calloc(1, sizeof *s);
  const cJSON *p;
  if (!s)
    return NULL;
  s->include_siblings = boolean(args, "includeSiblings", 0);
  s->up_max = integer(args, "upwardDistance", -1);
  s->down_max = integer(args, "downwardDistance", -1);
  const cJSON *pats = cJSON_GetObjectItemCaseSensitive(args, "ifAll");
  s->pats = calloc((size_t)cJSON_GetArraySize(pats) + 1, sizeof *s->pats);
  cJSON_ArrayForEach(p, pats) {
    struct kt_link_pattern *lp = &s->pats[s->npats++];
    parse_objfilter(cJSON_GetObjectItemCaseSensitive(p, "parent"), &lp->parent, err, errlen);
    parse_objfilter(cJSON_GetObjectItemCaseSensitive(p, "child"), &lp->child, err, errlen);
    lp->from_parent = boolean(p, "fromParent", 1);
    lp->from_child = boolean(p, "fromChild", 1);
    parse_filter(cJSON_GetObjectItemCaseSensitive(p, "linkClass"), &lp->link_class, err, errlen);
  }
  return s;
}

static void free_objfilter(struct kt_objfilter *f)
{
  free_filter(&f->cluster);
  free_filter(&f->group);
  free_filter(&f->resource);
  free_filter(&f->ns);
  free_filter(&f->name);
}

static void free_selector(struct kt_link_selector *s)
{
  for (size_t i = 0; s && i < s->npats; i++) {
    free_objfilter(&s->pats[i].parent);
    free_objfilter(&s->pats[i].child);
    free_filter(&s->pats[i].link_class);
  }
  if (s)
    free(s->pats);
  free(s);
}

static int cmp_names(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "<base> [<display names sorted, joined by +>]" */
static void mode_name(struct kt_mode *m, const char *base, char names[][64],
                      size_t n)
{
  char *sorted[8];
  size_t len = (size_t)snprintf(m->name, sizeof m->name, "%s", base);
  for (size_t i = 0; i < n; i++)
    sorted[i] = names[i];
  qsort(sorted, n, sizeof *sorted, cmp_names);
  for (size_t i = 0; i < n && len < sizeof m->name; i++)
    len += (size_t)snprintf(m->name + len, sizeof m->name - len, "%s%s%s",
                            i ? "+" : " [", sorted[i], i + 1 == n ? "]" : "");
}

struct mod {
  uint32_t bit;
  int priority;
  const cJSON *j;
};

static int cmp_mods(const void *a, const void *b)
{
  const struct mod *x = a, *y = b;
  return x->priority != y->priority ? x->priority - y->priority
                                    : (x->bit > y->bit) - (x->bit < y->bit);
}

#define MAX_MODES 256 /* configs x modifier combinations */

/* Every config registered so far without a modifier of this class gets a
 * clone with the bit set and the selector added. */
static int apply_modifier(struct kt_tf_set *set, const struct mod *md,
                          char base[][128], char disp[][8][64], size_t *ndisp,
                          char *err, size_t errlen)
{
  const cJSON *args = cJSON_GetObjectItemCaseSensitive(md->j, "args");
  const char *kind = str(md->j, "modifierName");
  const char *cls = str(args, "modifierClass") ? str(args, "modifierClass") : "";
  const char *dname = str(md->j, "displayName") ? str(md->j, "displayName") : "";
  if (!kind || strcmp(kind, "link-selector")) {
    snprintf(err, errlen, "unsupported modifier %s", kind ? kind : "(none)");
    return -EINVAL;
  }
  struct kt_link_selector *sel = parse_selector(args, err, errlen);
  if (!sel || add_ptr((void ***)&set->sels, &set->nsels, sel)) {
    free_selector(sel);
    return -ENOMEM;
  }
  size_t n = set->nmodes;
  for (size_t i = 0; i < n; i++) {
    struct kt_mode *m = &set->modes[i];
    int taken = 0;
    for (size_t c = 0; c < m->nclasses; c++)
      taken |= !strcmp(m->classes[c], cls);
    if (taken || m->nclasses >= 8)
      continue;
    if (set->nmodes >= MAX_MODES) { /* each modifier may double them */
      snprintf(err, errlen, "the modifiers combine into more than %d display "
               "modes", MAX_MODES);
      return -EINVAL;
    }
    struct kt_mode *nm = realloc(set->modes, (set->nmodes + 1) * sizeof *nm);
    if (!nm)
      return -ENOMEM;
    set->modes = nm;
    m = &set->modes[i];
    struct kt_mode *c = &set->modes[set->nmodes];
    *c = *m;
    c->id = m->id | md->bit;
    c->steps = malloc(m->nsteps * sizeof *c->steps + 1);
    c->sels = malloc((m->nsels + 1) * sizeof *c->sels);
    if (!c->steps || !c->sels) {
      free(c->steps);
      free(c->sels);
      return -ENOMEM;
    }
    for (size_t k = 0; k < m->nsteps; k++)
      c->steps[k] = m->steps[k];
    for (size_t k = 0; k < m->nsels; k++)
      c->sels[k] = m->sels[k];
    c->sels[c->nsels++] = sel;
    snprintf(c->classes[c->nclasses++], 64, "%s", cls);
    memcpy(base[set->nmodes], base[i], 128);
    memcpy(disp[set->nmodes], disp[i], sizeof disp[0]);
    ndisp[set->nmodes] = ndisp[i];
    snprintf(disp[set->nmodes][ndisp[set->nmodes]++], 64, "%s", dname);
    mode_name(c, base[set->nmodes], disp[set->nmodes], ndisp[set->nmodes]);
    set->nmodes++;
  }
  return 0;
}

static int build_set(const cJSON *doc, struct kt_tf_set *set, char *err,
                     size_t errlen)
{
  /* Loading happens once, at startup, on one thread. */
  static char base[MAX_MODES][128], disp[MAX_MODES][8][64];
  static size_t ndisp[MAX_MODES];
  const cJSON *cfg, *batches = cJSON_GetObjectItemCaseSensitive(doc, "batches");
  cJSON_ArrayForEach(cfg, cJSON_GetObjectItemCaseSensitive(doc, "configs")) {
    if (set->nmodes >= MAX_MODES / 8)
      break;
    struct kt_mode *nm = realloc(set->modes, (set->nmodes + 1) * sizeof *nm);
    if (!nm)
      return -ENOMEM;
    set->modes = nm;
    struct kt_mode *m = &set->modes[set->nmodes];
    memset(m, 0, sizeof *m);
    const char *id = str(cfg, "id"), *name = str(cfg, "name");
    if (!id || !name) {
      snprintf(err, errlen, "a config needs an id and a name");
      return -EINVAL;
    }
    m->id = (uint32_t)strtoul(id, NULL, 16);
    snprintf(m->name, sizeof m->name, "%s", name);
    snprintf(base[set->nmodes], 128, "%s", name);
    ndisp[set->nmodes] = 0;
    set->nmodes++;
    if (add_steps(set, m, cJSON_GetObjectItemCaseSensitive(cfg, "steps"), batches, 0, err, errlen))
      return -EINVAL;
  }
  if (!set->nmodes) {
    snprintf(err, errlen, "no configs");
    return -EINVAL;
  }
  struct mod mods[32];
  size_t nmods = 0;
  const cJSON *md;
  cJSON_ArrayForEach(md, mapping(doc, "modifiers"))
    if (nmods < 32 && md->string)
      mods[nmods++] = (struct mod){(uint32_t)strtoul(md->string, NULL, 16),
                                   integer(md, "priority", 0), md};
  qsort(mods, nmods, sizeof *mods, cmp_mods);
  for (size_t i = 0; i < nmods; i++)
    if (apply_modifier(set, &mods[i], base, disp, ndisp, err, errlen))
      return -EINVAL;
  /* the default first */
  const char *def = str(doc, "defaultConfig");
  uint32_t did = def ? (uint32_t)strtoul(def, NULL, 16) : set->modes[0].id;
  for (size_t i = 0; i < set->nmodes; i++)
    if (set->modes[i].id == did && i) {
      struct kt_mode tmp = set->modes[i];
      memmove(&set->modes[1], &set->modes[0], i * sizeof tmp);
      set->modes[0] = tmp;
    }
  return 0;
}

int kt_tf_load_text(const char *yaml, size_t len, struct kt_tf_set *out,
                    char *err, size_t errlen)
{
  memset(out, 0, sizeof *out);
  cJSON *doc = kt_yaml_to_json(yaml, len, err, errlen);
  if (!cJSON_IsObject(doc)) {
    if (doc)
      snprintf(err, errlen, "the transform config must be a mapping");
    cJSON_Delete(doc);
    return -EINVAL;
  }
  int rc = build_set(doc, out, err, errlen);
  cJSON_Delete(doc);
  if (rc)
    kt_tf_free(out);
  return rc;
}

int kt_tf_load_file(const char *path, struct kt_tf_set *out, char *err,
                    size_t errlen)
{
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
    return -errno;
  }
  char *buf = malloc(1 << 20);
  size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
  fclose(f);
  if (!buf)
    return -ENOMEM;
  int rc = kt_tf_load_text(buf, n, out, err, errlen);
  free(buf);
  return rc;
}

void kt_tf_free(struct kt_tf_set *s)
{
  for (size_t i = 0; i < s->nmodes; i++) {
    free(s->modes[i].steps);
    free(s->modes[i].sels);
  }
  free(s->modes);
  for (size_t i = 0; i < s->nsteps; i++)
    free_step(s->steps[i]);
  free(s->steps);
  for (size_t i = 0; i < s->nsels; i++)
    free_selector(s->sels[i]);
  free(s->sels);
  memset(s, 0, sizeof *s);
}

/* The shipped configuration (the original's hack/tfconfig.yaml as the
 * behaviour spec describes it). */
static const char default_yaml[] =
    "defaultConfig: \"20000000\"\n"
    "configs:\n"
    "  - id: \"00000000\"\n    name: tree\n    steps:\n"
    "      - {kind: Batch, batchName: initial}\n"
    "      - {kind: Batch, batchName: final}\n"
    "  - id: \"10000000\"\n    name: timeline\n    steps:\n"
    "      - {kind: Batch, batchName: initial}\n"
    "      - {kind: ExtractNestingVisitor, matchesPseudoType: object}\n"
    "      - {kind: Batch, batchName: final}\n"
    "  - id: \"20000000\"\n    name: tracing\n    steps:\n"
    "      - {kind: Batch, batchName: initial}\n"
    "      - {kind: Batch, batchName: collapse}\n"
    "      - {kind: ExtractNestingVisitor, matchesPseudoType: linkClass}\n"
    "      - {kind: CompactDurationVisitor}\n"
    "      - {kind: Batch, batchName: final}\n"
    "  - id: \"30000000\"\n    name: grouped\n    steps:\n"
    "      - {kind: Batch, batchName: initial}\n"
    "      - {kind: Batch, batchName: collapse}\n"
    "      - kind: GroupByTraceSourceVisitor\n"
    "        shouldBeGrouped: {oneOf: [event], then: false}\n"
    "      - {kind: CompactDurationVisitor}\n"
    "      - {kind: Batch, batchName: final}\n"
    "batches:\n"
    "  - name: initial\n    steps:\n"
    "      - {kind: PruneChildlessVisitor}\n"
    "      - {kind: ReplaceNameVisitor}\n"
    "      - {kind: ObjectTagsVisitor, resourceTags: [nodes]}\n"
    "      - {kind: ServiceOperationReplaceVisitor, traceSource: object, dest: service, source: [resource]}\n"
    "      - {kind: ServiceOperationReplaceVisitor, traceSource: object, dest: operation, source: [namespace, name]}\n"
    "  - name: final\n    steps:\n"
    "      - {kind: ClusterNameVisitor}\n"
    "      - {kind: PruneTagsVisitor}\n"
    "  - name: collapse\n    steps:\n"
    "      - kind: CollapseNestingVisitor\n"
    "        tagMappings:\n"
    "          audit: [{fromSpanTag: userAgent, toLogField: userAgent}, {fromSpanTag: sourceIP, toLogField: sourceIP}]\n"
    "          event: [{fromSpanTag: action, toLogField: action}, {fromSpanTag: source, toLogField: source}]\n"
    "        auditDiffClasses:\n"
    "          default: {shouldDisplay: true, name: diff, priority: 0}\n"
    "          fields:\n"
    "            - class: {shouldDisplay: true, name: verbose diff, priority: 10}\n"
    "              fields: [metadata.resourceVersion, metadata.generation]\n"
    "            - class: {shouldDisplay: false, name: managed fields, priority: 20}\n"
    "              fields: [metadata.managedFields]\n"
    "        logTypeMapping:\n"
    "          event/message: message\n"
    "          audit/objectSnapshot: snapshot\n"
    "          realError: error\n"
    "          realVerbose: \"\"\n"
    "          kelemetryError: _debug\n"
    "modifiers:\n"
    "  \"01000000\":\n    displayName: full tree\n    modifierName: link-selector\n"
    "    args: {modifierClass: owner-ref, includeSiblings: false, upwardDistance: 3, downwardDistance: 3}\n"
    "  \"02000000\":\n    displayName: ancestors\n    modifierName: link-selector\n"
    "    args:\n      modifierClass: owner-ref\n      upwardDistance: 3\n"
    "      ifAll: [{linkClass: children, fromParent: false}]\n"
    "  \"04000000\":\n    displayName: owned objects\n    modifierName: link-selector\n"
    "    args:\n      modifierClass: owner-ref\n      downwardDistance: 3\n"
    "      ifAll: [{linkClass: children, fromChild: false}]\n";

int kt_tf_load_default(struct kt_tf_set *out, char *err, size_t errlen)
{
  return kt_tf_load_text(default_yaml, sizeof default_yaml - 1, out, err, errlen);
}
