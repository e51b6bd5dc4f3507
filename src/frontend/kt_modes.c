/* kt_modes: see the header. The table is built once from the 4 base views
 * and the 3 modifiers, as the original's modifier expansion does. */
#include "frontend/kt_modes.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct kt_mode table[KT_NMODES];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void build(void)
{
  static const char *views[] = {"tree", "timeline", "tracing", "grouped"};
  static const struct {
    uint32_t bit;
    const char *name;
    struct kt_link_selector sel;
  } mods[] = {
      {0, NULL, {0, 0, 0, NULL}},
      {0x01000000u, "full tree", {3, 3, 1, NULL}},
      {0x02000000u, "ancestors", {3, 0, 0, "children"}},
      {0x04000000u, "owned objects", {0, 3, 0, "children"}},
  };
  /* Default (tracing) first, then the other bases, then modifiers. */
  static const int order[] = {2, 0, 1, 3};
  size_t n = 0;
  for (int m = 0; m < 4; m++)
    for (int v = 0; v < 4; v++) {
      struct kt_mode *md = &table[n++];
      int view = order[v];
      md->id = (uint32_t)view << 28 | mods[m].bit;
      md->view = (enum kt_view)view;
      md->sel = mods[m].sel;
      if (mods[m].name)
        snprintf(md->name, sizeof md->name, "%s [%s]", views[view],
                 mods[m].name);
      else
        snprintf(md->name, sizeof md->name, "%s", views[view]);
    }
}

const struct kt_mode *kt_modes(size_t *n)
{
  pthread_once(&once, build);
  *n = KT_NMODES;
  return table;
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

int kt_link_admit(const struct kt_link_selector *s, int first, int ups,
                  int downs, int up, const char *cls)
{
  if (s->cls && strcmp(s->cls, cls ? cls : "") != 0)
    return 0;
  if (s->no_siblings && first && first != (up ? 1 : -1))
    return 0;
  return up ? ups < s->up_max : downs < s->down_max;
}
