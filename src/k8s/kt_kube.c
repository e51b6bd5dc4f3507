/* kt_kube: see the header. */
#define _GNU_SOURCE /* pipe2 */
#include "k8s/kt_kube.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/kt_log.h"
#include "core/kt_time.h"
#include "json/kt_yaml.h"

extern char **environ;

#define MAX_BODY (256u << 20) /* a list page of big objects fits */
#define MAX_LINE (64u << 20)  /* one watch event */
#define EXEC_OUT_MAX (1u << 20)
#define EXEC_TIMEOUT_MS 30000

struct kt_kube {
  struct kt_kube_config c;
  char *cluster;
  pthread_mutex_t mu;       /* guards the bucket and the exec credential */
  double tokens;            /* token bucket */
  int64_t refill_us;
  char *exec_token;         /* cached exec credential */
  char *exec_cert, *exec_key;
  int64_t exec_expiry_us;   /* 0 = no expiry given */
};

/* ---- configuration ------------------------------------------------------ */

static int b64val(int c)
{
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Decodes base64 (whitespace ignored) into a NUL-terminated malloc'd
 * string; NULL when malformed. */
static char *b64decode(const char *in)
{
  size_t n = strlen(in), o = 0;
  char *out = malloc(n / 4 * 3 + 4);
  unsigned acc = 0;
  int bits = 0;
  for (size_t i = 0; out && i < n; i++) {
    if (in[i] == '=' || in[i] == '\n' || in[i] == '\r' || in[i] == ' ')
      continue;
    int v = b64val((unsigned char)in[i]);
    if (v < 0) {
      free(out);
      return NULL;
    }
    acc = acc << 6 | (unsigned)v;
    if ((bits += 6) >= 8) {
      bits -= 8;
      out[o++] = (char)(acc >> bits & 0xff);
    }
  }
  if (out)
    out[o] = 0;
  return out;
}

static char *read_file(const char *path, size_t max, size_t *len)
{
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  char *b = malloc(max + 1);
  size_t n = b ? fread(b, 1, max, f) : 0;
  fclose(f);
  if (b)
    b[n] = 0;
  if (len)
    *len = n;
  return b;
}

static const cJSON *named(const cJSON *list, const char *name,
                          const char *member)
{
  const cJSON *it;
  cJSON_ArrayForEach(it, list) {
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(it, "name");
    if (cJSON_IsString(n) && !strcmp(n->valuestring, name))
      return cJSON_GetObjectItemCaseSensitive(it, member);
  }
  return NULL;
}

static const char *str(const cJSON *o, const char *k)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) && *v->valuestring ? v->valuestring : NULL;
}

/* A path from the kubeconfig, made absolute against its directory. */
static char *rel_path(const char *dir, const char *p)
{
  if (!p)
    return NULL;
  size_t n = strlen(dir) + strlen(p) + 2;
  char *r = malloc(n);
  if (r)
    snprintf(r, n, "%s%s%s", p[0] == '/' ? "" : dir, p[0] == '/' ? "" : "/", p);
  return r;
}

/* A *-data member (base64) into PEM text; -EINVAL when malformed. */
static int data_field(const cJSON *o, const char *k, char **out)
{
  const char *v = str(o, k);
  if (!v)
    return 0;
  return (*out = b64decode(v)) ? 0 : -EINVAL;
}

static int fill_from(const cJSON *cluster, const cJSON *user, const char *dir,
                     struct kt_kube_config *c, char *err, size_t errlen)
{
  const char *server = str(cluster, "server");
  if (!server) {
    snprintf(err, errlen, "the context's cluster has no server");
    return -EINVAL;
  }
  c->server = strdup(server);
  size_t sl = strlen(c->server);
  while (sl && c->server[sl - 1] == '/')
    c->server[--sl] = 0;
  const char *insecure = str(cluster, "insecure-skip-tls-verify");
  c->insecure = insecure && !strcmp(insecure, "true");
  c->ca_file = rel_path(dir, str(cluster, "certificate-authority"));
  c->cert_file = rel_path(dir, str(user, "client-certificate"));
  c->key_file = rel_path(dir, str(user, "client-key"));
  c->token_file = rel_path(dir, str(user, "tokenFile"));
  if (str(user, "token"))
    c->token = strdup(str(user, "token"));
  if (data_field(cluster, "certificate-authority-data", &c->ca_pem) ||
      data_field(user, "client-certificate-data", &c->cert_pem) ||
      data_field(user, "client-key-data", &c->key_pem)) {
    snprintf(err, errlen, "a *-data field is not valid base64");
    return -EINVAL;
  }
  const cJSON *exec = cJSON_GetObjectItemCaseSensitive(user, "exec");
  if (cJSON_IsObject(exec)) {
    if (!str(exec, "command")) {
      snprintf(err, errlen, "the user's exec plugin has no command");
      return -EINVAL;
    }
    c->exec = cJSON_Duplicate(exec, 1);
  }
  return 0;
}

int kt_kube_parse_kubeconfig(const char *text, size_t len, const char *dir,
                             const char *context, struct kt_kube_config *out,
                             char *err, size_t errlen)
{
  memset(out, 0, sizeof *out);
  char yerr[160];
  cJSON *doc = kt_yaml_to_json(text, len, yerr, sizeof yerr);
  if (!doc) {
    snprintf(err, errlen, "%s", yerr);
    return -EINVAL;
  }
  if (!context || !*context)
    context = str(doc, "current-context");
  const cJSON *ctx = context ? named(cJSON_GetObjectItem(doc, "contexts"), context, "context") : NULL;
  const char *cname = str(ctx, "cluster"), *uname = str(ctx, "user");
  const cJSON *cluster = cname ? named(cJSON_GetObjectItem(doc, "clusters"), cname, "cluster") : NULL;
  const cJSON *user = uname ? named(cJSON_GetObjectItem(doc, "users"), uname, "user") : NULL;
  int rc = -EINVAL;
  if (!ctx)
    snprintf(err, errlen, "no context %s", context ? context : "(no current-context)");
  else if (!cluster)
    snprintf(err, errlen, "context %s names no known cluster", context);
  else
    rc = fill_from(cluster, user, dir, out, err, errlen);
  cJSON_Delete(doc);
  if (rc)
    kt_kube_config_free(out);
  return rc;
}

int kt_kube_load_kubeconfig(const char *path, const char *context,
                            struct kt_kube_config *out, char *err,
                            size_t errlen)
{
  memset(out, 0, sizeof *out);
  size_t len;
  char *text = read_file(path, 16u << 20, &len);
  if (!text) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return -ENOENT;
  }
  char dir[4096], why[400];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash)
    *slash = 0;
  else
    snprintf(dir, sizeof dir, ".");
  int rc = kt_kube_parse_kubeconfig(text, len, dir, context, out, why, sizeof why);
  free(text);
  if (rc)
    snprintf(err, errlen, "%s: %s", path, why);
  return rc;
}

int kt_kube_in_cluster(const char *root, struct kt_kube_config *out,
                       char *err, size_t errlen)
{
  memset(out, 0, sizeof *out);
  const char *host = getenv("KUBERNETES_SERVICE_HOST");
  const char *port = getenv("KUBERNETES_SERVICE_PORT");
  if (!host || !port) {
    snprintf(err, errlen, "not in a cluster: KUBERNETES_SERVICE_HOST/PORT unset");
    return -ENOENT;
  }
  if (!root)
    root = "/var/run/secrets/kubernetes.io/serviceaccount";
  char buf[512];
  snprintf(buf, sizeof buf, strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host, port);
  out->server = strdup(buf);
  snprintf(buf, sizeof buf, "%s/token", root);
  out->token_file = strdup(buf);
  snprintf(buf, sizeof buf, "%s/ca.crt", root);
  out->ca_file = strdup(buf);
  if (access(out->token_file, R_OK)) {
    snprintf(err, errlen, "%s: %s", out->token_file, strerror(errno));
    kt_kube_config_free(out);
    return -ENOENT;
  }
  return 0;
}

void kt_kube_config_free(struct kt_kube_config *c)
{
  char **fields[] = {&c->server, &c->token, &c->token_file, &c->ca_file,
                     &c->ca_pem, &c->cert_file, &c->cert_pem, &c->key_file,
                     &c->key_pem};
  for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
    free(*fields[i]);
    *fields[i] = NULL;
  }
  cJSON_Delete(c->exec);
  c->exec = NULL;
}

/* ---- client ------------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

struct kt_kube *kt_kube_new(struct kt_kube_config *cfg, const char *cluster)
{
  pthread_once(&curl_once, curl_init);
  struct kt_kube *k = calloc(1, sizeof *k);
  if (!k || !(k->cluster = strdup(cluster ? cluster : ""))) {
    free(k);
    return NULL;
  }
  k->c = *cfg;
  memset(cfg, 0, sizeof *cfg);
  if (k->c.qps <= 0)
    k->c.qps = 50;
  if (k->c.burst <= 0)
    k->c.burst = 100;
  if (k->c.timeout_ms <= 0)
    k->c.timeout_ms = 60000;
  k->tokens = k->c.burst;
  k->refill_us = kt_mono_us();
  pthread_mutex_init(&k->mu, NULL);
  return k;
}

void kt_kube_free(struct kt_kube *k)
{
  if (!k)
    return;
  kt_kube_config_free(&k->c);
  free(k->exec_token);
  free(k->exec_cert);
  free(k->exec_key);
  free(k->cluster);
  pthread_mutex_destroy(&k->mu);
  free(k);
}

const char *kt_kube_cluster(const struct kt_kube *k) { return k->cluster; }

/* Blocks until the bucket has a token. */
static void pace(struct kt_kube *k)
{
  for (;;) {
    pthread_mutex_lock(&k->mu);
    int64_t now = kt_mono_us();
    k->tokens += (double)(now - k->refill_us) * k->c.qps / 1e6;
    if (k->tokens > k->c.burst)
      k->tokens = k->c.burst;
    k->refill_us = now;
    double wait_us = k->tokens >= 1 ? 0 : (1 - k->tokens) * 1e6 / k->c.qps;
    if (k->tokens >= 1)
      k->tokens -= 1;
    pthread_mutex_unlock(&k->mu);
    if (wait_us <= 0)
      return;
    usleep((useconds_t)(wait_us < 1e6 ? wait_us : 1e6));
  }
}

/* ---- exec credential plugins (client.authentication.k8s.io) ------------- */

/* Runs the plugin with its args and env plus KUBERNETES_EXEC_INFO; its
 * stdout (bounded, within EXEC_TIMEOUT_MS) into *out. */
static int run_plugin(const cJSON *exec, char **out, char *err, size_t errlen)
{
  const cJSON *args = cJSON_GetObjectItem(exec, "args"), *env = cJSON_GetObjectItem(exec, "env"), *it;
  size_t na = (size_t)cJSON_GetArraySize(args), ne = (size_t)cJSON_GetArraySize(env), ni = 0;
  while (environ[ni])
    ni++;
  char **argv = calloc(na + 2, sizeof *argv), **envp = calloc(ni + ne + 2, sizeof *envp);
  char info[256];
  const char *api = str(exec, "apiVersion");
  snprintf(info, sizeof info,
           "KUBERNETES_EXEC_INFO={\"apiVersion\":\"%s\",\"kind\":\"ExecCredential\","
           "\"spec\":{\"interactive\":false}}",
           api ? api : "client.authentication.k8s.io/v1");
  int rc = -ENOMEM, fds[2] = {-1, -1};
  size_t a = 0, e = 0;
  if (!argv || !envp)
    goto out;
  argv[a++] = (char *)str(exec, "command");
  cJSON_ArrayForEach(it, args) if (cJSON_IsString(it)) argv[a++] = it->valuestring;
  for (size_t i = 0; i < ni; i++)
    envp[e++] = environ[i];
  cJSON_ArrayForEach(it, env) {
    const char *n = str(it, "name"), *v = str(it, "value");
    if (!n)
      continue;
    size_t l = strlen(n) + (v ? strlen(v) : 0) + 2;
    if ((envp[e] = malloc(l)))
      snprintf(envp[e++], l, "%s=%s", n, v ? v : "");
  }
  envp[e++] = info;
  if (pipe2(fds, O_CLOEXEC)) {
    rc = -errno;
    goto out;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  pid_t pid;
  int serr = posix_spawnp(&pid, argv[0], &fa, NULL, argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  if (serr) {
    snprintf(err, errlen, "exec plugin %s: %s", argv[0], strerror(serr));
    rc = -serr;
    goto out;
  }
  size_t n = 0;
  char *b = malloc(EXEC_OUT_MAX + 1);
  int64_t deadline = kt_mono_us() + EXEC_TIMEOUT_MS * 1000LL;
  while (b && n < EXEC_OUT_MAX) {
    struct pollfd p = {fds[0], POLLIN, 0};
    int left = (int)((deadline - kt_mono_us()) / 1000);
    if (left <= 0 || poll(&p, 1, left) <= 0)
      break;
    ssize_t r = read(fds[0], b + n, EXEC_OUT_MAX - n);
    if (r <= 0)
      break;
    n += (size_t)r;
  }
  int status = 0;
  if (kt_mono_us() >= deadline)
    kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  if (b)
    b[n] = 0;
  if (!b || !WIFEXITED(status) || WEXITSTATUS(status)) {
    snprintf(err, errlen, "exec plugin %s failed (status %d)", argv[0],
             WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    free(b);
    rc = -EIO;
    goto out;
  }
  *out = b;
  rc = 0;
out:
  if (fds[0] >= 0)
    close(fds[0]);
  for (size_t i = ni; envp && i + 1 < e; i++)
    free(envp[i]);
  free(argv);
  free(envp);
  return rc;
}

/* Refreshes the cached exec credential when missing or expired (with 10 s
 * of margin). Called with k->mu held. */
static int exec_refresh(struct kt_kube *k, char *err, size_t errlen)
{
  if ((k->exec_token || k->exec_cert) &&
      (!k->exec_expiry_us || kt_now_us() + 10000000 < k->exec_expiry_us))
    return 0;
  char *out = NULL;
  int rc = run_plugin(k->c.exec, &out, err, errlen);
  if (rc)
    return rc;
  cJSON *j = cJSON_Parse(out);
  free(out);
  const cJSON *st = cJSON_GetObjectItem(j, "status");
  const char *tok = str(st, "token"), *cert = str(st, "clientCertificateData"),
             *key = str(st, "clientKeyData"), *exp = str(st, "expirationTimestamp");
  if (!tok && !(cert && key)) {
    snprintf(err, errlen, "exec plugin gave no status.token nor client certificate");
    cJSON_Delete(j);
    return -EINVAL;
  }
  free(k->exec_token);
  free(k->exec_cert);
  free(k->exec_key);
  k->exec_token = tok ? strdup(tok) : NULL;
  k->exec_cert = cert ? strdup(cert) : NULL;
  k->exec_key = key ? strdup(key) : NULL;
  k->exec_expiry_us = 0;
  if (exp)
    kt_time_parse(exp, &k->exec_expiry_us);
  cJSON_Delete(j);
  return 0;
}

/* ---- requests ----------------------------------------------------------- */

struct sink {
  char *b;
  size_t n, cap, max;
  int overflow;
  /* streaming: lines go to on_line instead of accumulating */
  int (*on_line)(char *line, size_t len, void *ud);
  void *ud;
  int stopped;
  volatile int *stop;
};

static int sink_reserve(struct sink *s, size_t add)
{
  if (s->n + add + 1 <= s->cap)
    return 0;
  if (s->n + add > s->max) {
    s->overflow = 1;
    return -1;
  }
  size_t cap = s->cap ? s->cap : 16384;
  while (cap < s->n + add + 1)
    cap *= 2;
  char *b = realloc(s->b, cap);
  if (!b)
    return -1;
  s->b = b;
  s->cap = cap;
  return 0;
}

/* Hands every complete line to on_line and keeps the rest. */
static int drain_lines(struct sink *s)
{
  size_t start = 0;
  char *nl;
  while (!s->stopped && (nl = memchr(s->b + start, '\n', s->n - start))) {
    size_t len = (size_t)(nl - (s->b + start));
    *nl = 0;
    if (len && s->on_line(s->b + start, len, s->ud))
      s->stopped = 1;
    start += len + 1;
  }
  memmove(s->b, s->b + start, s->n - start);
  s->n -= start;
  return s->stopped ? -1 : 0;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud)
{
  struct sink *s = ud;
  size_t n = size * nmemb;
  if (sink_reserve(s, n))
    return 0;
  memcpy(s->b + s->n, p, n);
  s->n += n;
  s->b[s->n] = 0;
  if (s->on_line && drain_lines(s))
    return 0;
  return n;
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c,
                       curl_off_t d)
{
  struct sink *s = ud;
  return s->stop && *s->stop;
}

static void set_blob(CURL *h, CURLoption opt, const char *pem)
{
  struct curl_blob blob = {(void *)pem, strlen(pem), CURL_BLOB_COPY};
  curl_easy_setopt(h, opt, &blob);
}

/* Sets TLS and credentials; *hdrs receives the header list to free. */
static int setup(struct kt_kube *k, CURL *h, struct curl_slist **hdrs,
                 char *err, size_t errlen)
{
  char auth[8192] = "";
  const char *cert = k->c.cert_pem, *key = k->c.key_pem;
  if (k->c.exec) {
    pthread_mutex_lock(&k->mu);
    int rc = exec_refresh(k, err, errlen);
    if (!rc && k->exec_token)
      snprintf(auth, sizeof auth, "Authorization: Bearer %s", k->exec_token);
    if (!rc && k->exec_cert) {
      set_blob(h, CURLOPT_SSLCERT_BLOB, k->exec_cert);
      set_blob(h, CURLOPT_SSLKEY_BLOB, k->exec_key);
    }
    pthread_mutex_unlock(&k->mu);
    if (rc)
      return rc;
  }
  if (!*auth && k->c.token_file) {
    char *t = read_file(k->c.token_file, 65536, NULL);
    if (!t) {
      snprintf(err, errlen, "%s: %s", k->c.token_file, strerror(errno));
      return -ENOENT;
    }
    t[strcspn(t, "\r\n")] = 0;
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", t);
    free(t);
  } else if (!*auth && k->c.token) {
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", k->c.token);
  }
  if (*auth)
    *hdrs = curl_slist_append(*hdrs, auth);
  if (k->c.ca_pem)
    set_blob(h, CURLOPT_CAINFO_BLOB, k->c.ca_pem);
  else if (k->c.ca_file)
    curl_easy_setopt(h, CURLOPT_CAINFO, k->c.ca_file);
  if (cert)
    set_blob(h, CURLOPT_SSLCERT_BLOB, cert);
  else if (k->c.cert_file)
    curl_easy_setopt(h, CURLOPT_SSLCERT, k->c.cert_file);
  if (key)
    set_blob(h, CURLOPT_SSLKEY_BLOB, key);
  else if (k->c.key_file)
    curl_easy_setopt(h, CURLOPT_SSLKEY, k->c.key_file);
  if (k->c.insecure) {
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  return 0;
}

/* Performs one exchange into s; returns the status or -errno. */
static int perform(struct kt_kube *k, const char *method, const char *path,
                   const char *ctype, const char *body, struct sink *s,
                   long timeout_ms, char *err, size_t errlen)
{
  CURL *h = curl_easy_init();
  if (!h)
    return -ENOMEM;
  struct curl_slist *hdrs = curl_slist_append(NULL, "Accept: application/json");
  char url[8192], ct[160];
  snprintf(url, sizeof url, "%s%s", k->c.server, path);
  int rc = setup(k, h, &hdrs, err, errlen);
  if (rc) {
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return rc;
  }
  if (ctype) {
    snprintf(ct, sizeof ct, "Content-Type: %s", ctype);
    hdrs = curl_slist_append(hdrs, ct);
  }
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "kelemetry");
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, s);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  if (body) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
  }
  CURLcode cc = curl_easy_perform(h);
  long code = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  if (cc == CURLE_OK || (s->on_line && (s->stopped || (s->stop && *s->stop))) ||
      (s->on_line && cc == CURLE_OPERATION_TIMEDOUT && code)) {
    rc = (int)code;
  } else {
    snprintf(err, errlen, "%s %s: %s", method, url,
             s->overflow ? "answer too large" : curl_easy_strerror(cc));
    rc = cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO;
  }
  if (code == 401 && k->c.exec) {
    /* The credential may have been revoked early: run the plugin again
     * on the next request. */
    pthread_mutex_lock(&k->mu);
    k->exec_expiry_us = 1;
    pthread_mutex_unlock(&k->mu);
  }
  curl_slist_free_all(hdrs);
  curl_easy_cleanup(h);
  return rc;
}

int kt_kube_request(struct kt_kube *k, const char *method, const char *path,
                    const char *content_type, const char *body, char **out,
                    char *err, size_t errlen)
{
  struct sink s = {.max = MAX_BODY};
  pace(k);
  int rc = perform(k, method, path, content_type, body, &s, k->c.timeout_ms,
                   err, errlen);
  if (rc > 0 && !s.b)
    s.b = calloc(1, 1);
  if (rc > 0 && out)
    *out = s.b;
  else
    free(s.b);
  return rc > 0 && !s.b ? -ENOMEM : rc;
}

cJSON *kt_kube_get_json(struct kt_kube *k, const char *path, int *status,
                        char *err, size_t errlen)
{
  char *body = NULL;
  *status = kt_kube_request(k, "GET", path, NULL, NULL, &body, err, errlen);
  cJSON *j = *status >= 200 && *status < 300 ? cJSON_Parse(body) : NULL;
  if (*status >= 300)
    snprintf(err, errlen, "GET %s: HTTP %d", path, *status);
  else if (*status > 0 && !j)
    snprintf(err, errlen, "GET %s: the answer is not JSON", path);
  free(body);
  return j;
}

int kt_kube_stream(struct kt_kube *k, const char *path,
                   int (*on_line)(char *line, size_t len, void *ud), void *ud,
                   volatile int *stop, long timeout_s, char *err,
                   size_t errlen)
{
  struct sink s = {.max = MAX_LINE, .on_line = on_line, .ud = ud, .stop = stop};
  int rc = perform(k, "GET", path, NULL, NULL, &s, timeout_s * 1000L, err, errlen);
  /* A non-streamed answer (an error Status) is one last line. */
  if (rc > 0 && s.n && !s.stopped && !(stop && *stop))
    on_line(s.b, s.n, ud);
  free(s.b);
  return rc;
}

void kt_kube_escape(const char *s, char *buf, size_t len)
{
  static const char hex[] = "0123456789ABCDEF";
  size_t o = 0;
  for (; *s && o + 4 < len; s++) {
    unsigned char c = (unsigned char)*s;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~') {
      buf[o++] = (char)c;
    } else {
      buf[o++] = '%';
      buf[o++] = hex[c >> 4];
      buf[o++] = hex[c & 15];
    }
  }
  buf[o] = 0;
}
