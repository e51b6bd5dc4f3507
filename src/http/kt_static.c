/* kt_static: see the header. */
#include "http/kt_static.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http/kt_assets.h"

#define MAX_FILE ((size_t)64 << 20)

const char *kt_static_mime(const char *path)
{
  static const char *types[][2] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".woff2", "font/woff2"},
      {".woff", "font/woff"},
      {".txt", "text/plain; charset=utf-8"}};
  const char *dot = strrchr(path, '.');
  for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
    if (strcmp(dot, types[i][0]) == 0)
      return types[i][1];
  return "application/octet-stream";
}

/* Only plain relative paths: no "..", no "//", no backslashes, no NUL. */
static int safe_path(const char *p)
{
  if (p[0] != '/' || strstr(p, "..") || strstr(p, "//") || strchr(p, '\\'))
    return 0;
  return strlen(p) < 1024;
}

static const struct kt_asset *builtin(const char *path)
{
  for (const struct kt_asset *a = kt_assets; a->path; a++)
    if (strcmp(a->path, path) == 0)
      return a;
  return NULL;
}

static int read_file(const char *path, char **buf, size_t *len)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  struct stat sb;
  if (fd < 0)
    return -errno;
  if (fstat(fd, &sb) || !S_ISREG(sb.st_mode) || (size_t)sb.st_size > MAX_FILE) {
    close(fd);
    return -ENOENT;
  }
  *buf = malloc((size_t)sb.st_size + 1);
  ssize_t n = *buf ? read(fd, *buf, (size_t)sb.st_size) : -1;
  close(fd);
  if (n != sb.st_size) {
    free(*buf);
    return -EIO;
  }
  *len = (size_t)n;
  return 0;
}

static int serve_dir(const struct kt_static *st, const char *path,
                     struct kt_http_resp *resp)
{
  char full[2048], *buf;
  size_t len;
  snprintf(full, sizeof full, "%s%s", st->dir, path);
  if (read_file(full, &buf, &len) == 0) {
    kt_http_set_body(resp, 200, kt_static_mime(path), buf, len);
    return 0;
  }
  snprintf(full, sizeof full, "%s/index.html", st->dir);
  if (read_file(full, &buf, &len) == 0) {
    kt_http_set_body(resp, 200, "text/html; charset=utf-8", buf, len);
    resp->cache_control = "no-cache";
    return 0;
  }
  kt_http_error(resp, 404, "not found");
  return 0;
}

int kt_static_handle(void *ud, const struct kt_http_req *req,
                     struct kt_http_resp *resp)
{
  const struct kt_static *st = ud;
  const char *path = strcmp(req->path, "/") == 0 ? "/index.html" : req->path;
  if (strncmp(path, "/api/", 5) == 0)
    return -ENOENT;
  if (!safe_path(path)) {
    kt_http_error(resp, 400, "invalid path");
    return 0;
  }
  if (st->dir && *st->dir)
    return serve_dir(st, path, resp);
  const struct kt_asset *a = builtin(path);
  if (!a) /* SPA route */
    a = builtin("/index.html");
  if (!a) {
    kt_http_error(resp, 404, "not found");
    return 0;
  }
  resp->status = 200;
  resp->content_type = kt_static_mime(a->path);
  resp->static_body = a->data;
  resp->len = a->len;
  resp->cache_control = "no-cache";
  return 0;
}
