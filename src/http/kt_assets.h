/* kt_assets: the built-in UI's files, compiled into the binary by
 * tools/embed.cmake. The table ends with a NULL path. */
#ifndef KT_ASSETS_H
#define KT_ASSETS_H
#include <stddef.h>

struct kt_asset {
  const char *path;          /* "/index.html" */
  const unsigned char *data; /* NUL-terminated copy of the file */
  size_t len;
};

extern const struct kt_asset kt_assets[];

#endif
