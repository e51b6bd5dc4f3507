/* kt_static: serves the UI — the built-in files compiled into the binary,
 * or a directory given with --ui-assets (an unmodified Jaeger UI build,
 * for instance). Unknown paths that are not files fall back to index.html,
 * as SPA routes (/search, /trace/<id>) need. Paths with ".." or other
 * escapes are refused: nothing outside the directory is ever read. */
#ifndef KT_STATIC_H
#define KT_STATIC_H

#include "http/kt_http.h"

struct kt_static {
  const char *dir; /* NULL or "" = built-in assets */
};

/* GET handler for every path; register it last. */
int kt_static_handle(void *st, const struct kt_http_req *req,
                     struct kt_http_resp *resp);
const char *kt_static_mime(const char *path);

#endif
