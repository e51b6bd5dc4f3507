/* kt_auth: who may call a server. Bearer tokens (one per line in a file,
 * as the apiserver's webhook kubeconfig or an API client sends them) and
 * HTTP basic credentials (`user:password` lines, for browsers). Checked on
 * the request headers before any body is read; comparisons take constant
 * time. Client certificates are checked by kt_http itself (TLS). */
#ifndef KT_AUTH_H
#define KT_AUTH_H
#include <stddef.h>

struct kt_auth {
  char **accepted; /* full Authorization header values accepted */
  size_t n;
  int basic;       /* some are basic credentials: ask browsers for them */
};

/* Either file may be NULL or "". 0, or -errno / -EINVAL with a reason in
 * err (unreadable file, empty file, line without ':' in the basic file). */
int kt_auth_load(struct kt_auth *a, const char *token_file,
                 const char *basic_file, char *err, size_t errlen);
void kt_auth_free(struct kt_auth *a);
/* Whether anything is required at all. */
int kt_auth_enabled(const struct kt_auth *a);
/* 1 when the Authorization header value grants access. */
int kt_auth_allows(const struct kt_auth *a, const char *authorization);

#endif
