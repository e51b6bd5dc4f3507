/* kt_scanpods: see the header. */
#include "ops/kt_scanpods.h"

#include <stdlib.h>
#include <string.h>

#include "audit/kt_audit.h"
#include "k8s/kt_kube.h"
#include "ops/kt_scan.h"

#define MAX_URLS 64
#define DEFAULT_URL "http://127.0.0.1:9090/metrics"

struct args {
  const char *kubeconfig, *context, *ns, *release;
  int in_cluster;
  char *urls[MAX_URLS];
  int n;
};

static int usage(FILE *out)
{
  fprintf(out,
          "usage: kelemetry scan [METRICS_URL...]\n"
          "       kelemetry scan [--kube-config FILE] [--kube-context NAME] [--in-cluster]\n"
          "                      [--namespace NS] [--release NAME]\n"
          "  --lag-wait MS: a consumer with queued Redis entries is read again after\n"
          "  MS (default 2000, 0 = once) to tell whether its queue grows\n"
          "  reads kelemetry metrics (default %s, or every pod labelled\n"
          "  app.kubernetes.io/name=kelemetry found through the Kubernetes API)\n"
          "  and reports problems; exit 0 healthy, 1 attention needed, 2 unreachable\n",
          DEFAULT_URL);
  return 2;
}

static int parse(int argc, char **argv, struct args *a)
{
  memset(a, 0, sizeof *a);
  for (int i = 0; i < argc; i++) {
    const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    const char **dst = !strcmp(s, "--kube-config") ? &a->kubeconfig
                       : !strcmp(s, "--kube-context") ? &a->context
                       : !strcmp(s, "--namespace") ? &a->ns
                       : !strcmp(s, "--release") ? &a->release : NULL;
    if (dst) {
      if (!v)
        return -1;
      *dst = v;
      i++;
    } else if (!strcmp(s, "--in-cluster")) {
      a->in_cluster = 1;
    } else if (!strcmp(s, "--lag-wait")) {
      char *end;
      long ms = v ? strtol(v, &end, 10) : -1;
      if (!v || *end || ms < 0 || ms > 60000)
        return -1;
      kt_scan_set_lag_wait((int)ms);
      i++;
    } else if (s[0] == '-' || a->n == MAX_URLS) {
      return -1;
    } else {
      a->urls[a->n++] = strdup(s);
    }
  }
  return 0;
}

/* Prints the pod's False conditions; adds its metrics ports. */
static void add_pod(const cJSON *pod, struct args *a, FILE *out)
{
  const char *name = kt_json_str(cJSON_GetObjectItem(pod, "metadata"), "name");
  const cJSON *status = cJSON_GetObjectItem(pod, "status"), *c, *ct, *p;
  const char *ip = kt_json_str(status, "podIP");
  cJSON_ArrayForEach(c, cJSON_GetObjectItem(status, "conditions")) {
    const char *st = kt_json_str(c, "status");
    if (st && !strcmp(st, "False"))
      fprintf(out, "%s: %s %s%s%s\n", name ? name : "?", kt_json_str(c, "type") ? kt_json_str(c, "type") : "",
              st, kt_json_str(c, "message") ? ": " : "",
              kt_json_str(c, "message") ? kt_json_str(c, "message") : "");
  }
  if (!ip) {
    fprintf(out, "%s: no pod IP yet\n", name ? name : "?");
    return;
  }
  cJSON_ArrayForEach(ct, cJSON_GetObjectItem(cJSON_GetObjectItem(pod, "spec"), "containers")) {
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(ct, "ports")) {
      const char *pn = kt_json_str(p, "name");
      const cJSON *port = cJSON_GetObjectItem(p, "containerPort");
      if (pn && !strcmp(pn, "metrics") && cJSON_IsNumber(port) && a->n < MAX_URLS) {
        char url[256];
        snprintf(url, sizeof url, strchr(ip, ':') ? "http://[%s]:%d/metrics" : "http://%s:%d/metrics",
                 ip, port->valueint);
        a->urls[a->n++] = strdup(url);
      }
    }
  }
}

static int find_pods(struct args *a, FILE *out)
{
  struct kt_kube_config kc;
  char err[512], path[2048], sel[512], esc[1024];
  int rc = a->kubeconfig ? kt_kube_load_kubeconfig(a->kubeconfig, a->context, &kc, err, sizeof err)
                         : kt_kube_in_cluster(NULL, &kc, err, sizeof err);
  if (rc) {
    fprintf(out, "scan: %s\n", err);
    return 2;
  }
  struct kt_kube *k = kt_kube_new(&kc, "scan");
  if (!k) {
    kt_kube_config_free(&kc);
    return 2;
  }
  const char *ns = a->ns ? a->ns : getenv("POD_NAMESPACE") ? getenv("POD_NAMESPACE") : "default";
  snprintf(sel, sizeof sel, "app.kubernetes.io/name=kelemetry%s%s",
           a->release ? ",app.kubernetes.io/instance=" : "", a->release ? a->release : "");
  kt_kube_escape(sel, esc, sizeof esc);
  snprintf(path, sizeof path, "/api/v1/namespaces/%s/pods?labelSelector=%s", ns, esc);
  int status;
  cJSON *list = kt_kube_get_json(k, path, &status, err, sizeof err);
  kt_kube_free(k);
  if (!list) {
    fprintf(out, "scan: listing pods: %s\n", err);
    return 2;
  }
  const cJSON *pod;
  int pods = 0;
  cJSON_ArrayForEach(pod, cJSON_GetObjectItem(list, "items")) {
    add_pod(pod, a, out);
    pods++;
  }
  cJSON_Delete(list);
  fprintf(out, "Found %d kelemetry pods (%s in namespace %s)\n", pods, sel, ns);
  return pods ? 0 : 2;
}

int kt_scan_main(int argc, char **argv, FILE *out)
{
  struct args a;
  if (argc == 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
    usage(out);
    return 0;
  }
  if (parse(argc, argv, &a)) {
    for (int i = 0; i < a.n; i++)
      free(a.urls[i]);
    return usage(out);
  }
  int rc = 0;
  if (a.kubeconfig || a.in_cluster || a.ns || a.release)
    rc = find_pods(&a, out);
  if (!rc && !a.n && !(a.kubeconfig || a.in_cluster || a.ns || a.release))
    a.urls[a.n++] = strdup(DEFAULT_URL);
  if (!rc)
    rc = a.n ? kt_scan((const char *const *)a.urls, a.n, out) : 2;
  for (int i = 0; i < a.n; i++)
    free(a.urls[i]);
  return rc;
}
