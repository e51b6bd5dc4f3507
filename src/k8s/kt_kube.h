/* kt_kube: a client for one Kubernetes API server.
 *
 * Configuration comes from a kubeconfig (a context's cluster and user:
 * token, tokenFile, client certificate and key as file or data, CA as file
 * or data, insecure-skip-tls-verify, exec credential plugins run as
 * client-go runs them) or from the in-cluster service account. Requests go
 * through libcurl: plain calls answer a status and a body; streams (watch)
 * hand each line to a callback. Requests are paced by a token bucket
 * (qps, burst); streams are not. Thread-safe: each call uses its own curl
 * handle; the exec credential is cached under a lock until it expires or a
 * 401 invalidates it. */
#ifndef KT_KUBE_H
#define KT_KUBE_H
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct kt_kube_config {
  char *server;             /* https://host:port, no trailing slash */
  char *token;              /* bearer token */
  char *token_file;         /* re-read for every request (rotation) */
  char *ca_file, *ca_pem;   /* CA bundle: path or PEM bytes */
  char *cert_file, *cert_pem; /* client certificate */
  char *key_file, *key_pem;   /* client key */
  int insecure;             /* insecure-skip-tls-verify */
  cJSON *exec;              /* the user's exec stanza, or NULL */
  double qps;               /* 0 = 50 */
  int burst;                /* 0 = 100 */
  long timeout_ms;          /* plain requests; 0 = 60 s */
};

/* Loads context (NULL or "" = current-context) of the kubeconfig at path;
 * relative file paths are taken relative to the kubeconfig's directory.
 * 0, or -errno with a one-line reason in err. */
int kt_kube_load_kubeconfig(const char *path, const char *context,
                            struct kt_kube_config *out, char *err,
                            size_t errlen);
/* As kt_kube_load_kubeconfig, from the file's text; dir resolves relative
 * paths. */
int kt_kube_parse_kubeconfig(const char *text, size_t len, const char *dir,
                             const char *context, struct kt_kube_config *out,
                             char *err, size_t errlen);
/* The pod's service account: KUBERNETES_SERVICE_HOST/PORT, the token file
 * and CA under /var/run/secrets/kubernetes.io/serviceaccount (root
 * overridable for tests: NULL = that path). */
int kt_kube_in_cluster(const char *root, struct kt_kube_config *out,
                       char *err, size_t errlen);
void kt_kube_config_free(struct kt_kube_config *c);

struct kt_kube;

/* Takes ownership of *cfg (zeroed on return). cluster names the client in
 * logs and metrics. NULL on ENOMEM. */
struct kt_kube *kt_kube_new(struct kt_kube_config *cfg, const char *cluster);
void kt_kube_free(struct kt_kube *k);
const char *kt_kube_cluster(const struct kt_kube *k);

/* One request to path (starting with '/', query included). body may be
 * NULL. Returns the HTTP status, or -errno when no answer came (reason in
 * err); *out (malloc'd, NUL-terminated, caller frees) holds the body. */
int kt_kube_request(struct kt_kube *k, const char *method, const char *path,
                    const char *content_type, const char *body, char **out,
                    char *err, size_t errlen);
/* As kt_kube_request, the answer parsed: NULL unless 2xx JSON; *status gets
 * the status or -errno. Caller deletes. */
cJSON *kt_kube_get_json(struct kt_kube *k, const char *path, int *status,
                        char *err, size_t errlen);

/* A streaming GET: on_line gets each complete line (without '\n', NUL
 * terminated) as it arrives; a non-zero return ends the stream. Ends too
 * when *stop becomes non-zero (checked at least every second) or after
 * timeout_s (0 = none). Returns the HTTP status, or -errno. */
int kt_kube_stream(struct kt_kube *k, const char *path,
                   int (*on_line)(char *line, size_t len, void *ud), void *ud,
                   volatile int *stop, long timeout_s, char *err,
                   size_t errlen);

/* Percent-encodes s for a query value into buf. */
void kt_kube_escape(const char *s, char *buf, size_t len);

#endif
