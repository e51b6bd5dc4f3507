/* kt_modes: see the header. */
#include "frontend/kt_modes.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/kt_log.h"

static struct kt_tf_set set;
static int installed;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

int kt_modes_install(const char *file, char *err, size_t errlen)
{
  struct kt_tf_set s;
  int rc = file && *file ? kt_tf_load_file(file, &s, err, errlen)
                         : kt_tf_load_default(&s, err, errlen);
  if (rc)
    return rc;
  pthread_mutex_lock(&mu);
  if (installed)
    kt_tf_free(&set);
  set = s;
  installed = 1;
  pthread_mutex_unlock(&mu);
  return 0;
}

const struct kt_mode *kt_modes(size_t *n)
{
  pthread_mutex_lock(&mu);
  if (!installed) {
    char err[256];
    if (kt_tf_load_default(&set, err, sizeof err) == 0)
      installed = 1;
    else
      kt_error("built-in transform config: %s", err);
  }
  pthread_mutex_unlock(&mu);
  *n = set.nmodes;
  return set.modes;
}

const struct kt_mode *kt_mode_by_id(uint32_t id)
{
  size_t n;
  const struct kt_mode *m = kt_modes(&n);
  for (size_t i = 0; i < n; i++)
    if (m[i].id == id)
      return &m[i];
  return NULL;
}

const struct kt_mode *kt_mode_by_name(const char *name)
{
  size_t n;
  const struct kt_mode *m = kt_modes(&n);
  if (!name)
    return NULL;
  if (strncmp(name, "* ", 2) == 0)
    name += 2;
  for (size_t i = 0; i < n; i++)
    if (strcmp(m[i].name, name) == 0)
      return &m[i];
  return NULL;
}

const struct kt_mode *kt_mode_default(void)
{
  size_t n;
  const struct kt_mode *m = kt_modes(&n);
  return n ? &m[0] : NULL;
}

void kt_mode_trace_id(uint32_t mode, uint64_t key, char out[33])
{
  snprintf(out, 33, "ff%08xe1e3e7%016llx", mode, (unsigned long long)key);
}

int kt_mode_parse_trace_id(const char *id, uint32_t *mode, uint64_t *key)
{
  char hex[9];
  if (!id || strlen(id) != 32 || strncmp(id, "ff", 2) != 0 ||
      strncmp(id + 10, "e1e3e7", 6) != 0)
    return -EINVAL;
  for (const char *p = id; *p; p++)
    if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') ||
          (*p >= 'A' && *p <= 'F')))
      return -EINVAL;
  memcpy(hex, id + 2, 8);
  hex[8] = 0;
  *mode = (uint32_t)strtoul(hex, NULL, 16);
  *key = strtoull(id + 16, NULL, 16);
  return 0;
}

static int obj_match(const struct kt_objfilter *f, const char *const k[5])
{
  return kt_strfilter_match(&f->cluster, k[0]) &&
         kt_strfilter_match(&f->group, k[1]) &&
         kt_strfilter_match(&f->resource, k[2]) &&
         kt_strfilter_match(&f->ns, k[3]) && kt_strfilter_match(&f->name, k[4]);
}

static int sel_admit(const struct kt_link_selector *s,
                     const struct kt_link_path *p, const char *const parent[5],
                     const char *const child[5], int up, const char *cls)
{
  for (size_t i = 0; i < s->npats; i++) {
    const struct kt_link_pattern *lp = &s->pats[i];
    if (!obj_match(&lp->parent, parent) || !obj_match(&lp->child, child) ||
        !kt_strfilter_match(&lp->link_class, cls) ||
        (!up && !lp->from_parent) || (up && !lp->from_child))
      return 0;
  }
  if (!s->include_siblings && p->first && p->first != (up ? 1 : -1))
    return 0;
  if (up)
    return s->up_max < 0 || p->ups < s->up_max;
  return s->down_max < 0 || p->downs < s->down_max;
}

int kt_mode_admit(const struct kt_mode *m, const struct kt_link_path *p,
                  const char *const parent[5], const char *const child[5],
                  int up, const char *cls)
{
  for (size_t i = 0; i < m->nsels; i++)
    if (sel_admit(m->sels[i], p, parent, child, up, cls ? cls : ""))
      return 1;
  return 0;
}
