/* kelemetry: one binary, components chosen by flags (behaviour spec §0).
 *
 *   kelemetry [flags]                 all-in-one: webhook :8080, query API
 *                                     and UI :16686, metrics :9090, data
 *                                     in ./kelemetry-data
 *   kelemetry replay [flags] FILE...  ingest audit logs offline, then exit
 *                                     (or keep serving with --serve)
 *   kelemetry scan [METRICS_URL...]   what looks wrong, and what to do
 *
 * main() owns every component; they are started in dependency order and
 * stopped in reverse: servers stop accepting, the queue drains, the caches
 * persist, the store flushes. */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit/kt_audit.h"
#include "audit/kt_consumer.h"
#include "audit/kt_inbox.h"
#include "audit/kt_mq_consumer.h"
#include "audit/kt_mq_producer.h"
#include "audit/kt_pipeline.h"
#include "audit/kt_replay.h"
#include "audit/kt_webhook.h"
#include "core/kt_config.h"
#include "core/kt_log.h"
#include "core/kt_metrics.h"
#include "core/kt_time.h"
#include "diff/kt_diffcache.h"
#include "http/kt_auth.h"
#include "informer/kt_informers.h"
#include "json/kt_jmem.h"
#include "kelemetrix/kt_kelemetrix.h"
#include "kv/kt_kv.h"
#include "http/kt_http.h"
#include "http/kt_static.h"
#include "ops/kt_kubecheck.h"
#include "ops/kt_roles.h"
#include "ops/kt_scanpods.h"
#include "frontend/kt_frontend.h"
#include "frontend/kt_modes.h"
#include "store/kt_store.h"

struct options {
  char *config, *log_level, *log_format, *log_file, *data_dir;
  char *http_address, *metrics_address, *query_address;
  long http_port, metrics_port, query_port, workers;
  int64_t shutdown_timeout, retention, span_ttl, span_extra_ttl, reserve_ttl;
  int64_t trace_cache_ttl, max_skew;
  size_t body_limit, queue_limit, diff_cache_bytes, span_cache_entries;
  int webhook_enable, query_enable, metrics_enable, serve, help, version;
  int print_components;
  int durable, inbox_compress;
  int owner_linker, annotation_linker, res_obj_tag, res_event_tag;
  int ignore_impersonate, progress;
  char *default_cluster, *only_cluster, *exclude_clusters;
  char *exclude_types, *exclude_agents, *exclude_regex, *redact_pattern;
  char *pseudo_tags, *event_tags, *tag_mapping, *tag_verbs;
  char *cluster_names, *ui_assets, *tf_config;
  char *tls_cert, *tls_key, *tls_client_ca, *webhook_token_file;
  char *query_tls_cert, *query_tls_key, *query_token_file, *query_basic_file;
  long follow_link_limit;
  /* Kubernetes side */
  char *kube_cluster, *kubeconfig, *kube_context, *kube_paths, *kube_apiservers;
  long kube_qps, kube_burst;
  int event_enable, diff_enable, decorator_enable, live_filter;
  int64_t discovery_resync, patch_ttl, snapshot_ttl;
  int64_t fetch_backoff, fetch_event_timeout, fetch_total_timeout;
  char *cm_ns, *cm_name;
  int64_t cm_sync;
  struct kt_informers_election event_le, diff_le;
  char *event_le_ns, *event_le_name, *diff_le_ns, *diff_le_name;
  long event_le_n, diff_le_n;
  char *kube_timeouts;
  /* span store backend */
  char *store_backend, *pg_dsn;
  int64_t pg_partition;
  long pg_pool;
  /* kelemetrix (§3.3) */
  int kx_enable, kx_log_tags, kx_log_quantities;
  char *kx_config;
  /* OTLP export (§1.12) */
  char *otel_endpoint, *otel_encoding, *otel_res_attrs, *otel_headers;
  int otel_insecure, otel_only;
  long otel_buffer_spans, otel_batch_spans;
  size_t otel_buffer_bytes;
  int64_t otel_batch_delay, otel_timeout, otel_retry_max;
  int64_t otel_retry_initial, otel_retry_max_interval;
  /* shared caches (distributed mode): --span-cache, --diff-cache,
   * --jaeger-trace-cache and their engine flags */
  struct kt_kv_choice span_kv, diff_kv, trace_kv;
  /* audit queue on Redis Streams (kt_mq_*) */
  char *mq, *mq_address, *mq_prefix, *mq_group, *mq_key;
  long mq_partitions, mq_max_len;
  int64_t mq_claim_idle;
  int producer_enable, consumer_enable;
};

static struct options opt;

#define F(n, t, d, h, p) {n, t, d, h, p}
static const struct kt_flag flags[] = {
  F("config", KT_STR, "", "YAML file with any of these flags as keys", &opt.config),
  F("help", KT_BOOL, "false", "print this help and exit", &opt.help),
  F("version", KT_BOOL, "false", "print the version and exit", &opt.version),
  F("print-components", KT_BOOL, "false", "print which components these flags run (and why), then exit", &opt.print_components),
  F("log-level", KT_STR, "info", "debug, info, warn or error", &opt.log_level),
  F("log-format", KT_STR, "text", "text or json", &opt.log_format),
  F("log-file", KT_STR, "", "append logs to this file instead of stderr", &opt.log_file),
  F("shutdown-timeout", KT_DURATION, "15s", "budget to drain and flush on SIGINT/SIGTERM", &opt.shutdown_timeout),
  F("data-dir", KT_STR, "./kelemetry-data", "where the embedded store lives", &opt.data_dir),
  F("storage-retention", KT_DURATION, "168h", "delete traces older than this (0 = keep)", &opt.retention),
  F("storage-backend", KT_STR, "sqlite", "span store: sqlite (embedded, in --data-dir) or postgres (shared by many processes, --storage-postgres-dsn)", &opt.store_backend),
  F("storage-postgres-dsn", KT_STR, "", "postgres: libpq conninfo (\"host=... dbname=...\") or postgresql:// URI", &opt.pg_dsn),
  F("storage-postgres-partition-interval", KT_DURATION, "24h", "postgres: time span of one span partition (retention drops whole partitions)", &opt.pg_partition),
  F("storage-postgres-pool", KT_INT, "4", "postgres: connections for reads (queries, caches)", &opt.pg_pool),
  F("audit-webhook-enable", KT_BOOL, "true", "serve POST /audit and /audit/{cluster}", &opt.webhook_enable),
  F("http-address", KT_STR, "", "webhook listen address", &opt.http_address),
  F("http-port", KT_INT, "8080", "webhook port", &opt.http_port),
  F("http-tls-cert", KT_STR, "", "webhook: serve HTTPS with this PEM certificate (with --http-tls-key)", &opt.tls_cert),
  F("http-tls-key", KT_STR, "", "webhook: the PEM private key", &opt.tls_key),
  F("http-tls-client-ca", KT_STR, "", "webhook: require client certificates signed by this PEM CA", &opt.tls_client_ca),
  F("audit-webhook-token-file", KT_STR, "", "webhook: require one of these bearer tokens (one per line)", &opt.webhook_token_file),
  F("audit-webhook-durable", KT_BOOL, "true", "answer 200 only once a request is on disk (write-ahead inbox), and recover it after a crash", &opt.durable),
  F("audit-inbox-compress", KT_BOOL, "true", "keep webhook bodies zstd-compressed in the write-ahead inbox (about 10x less to write)", &opt.inbox_compress),
  F("audit-webhook-body-limit", KT_SIZE, "64Mi", "largest accepted body (413 above)", &opt.body_limit),
  F("audit-default-cluster", KT_STR, "default", "cluster of POST /audit (no {cluster} in the path) and of replays", &opt.default_cluster),
  F("audit-queue-limit", KT_INT, "8000", "events queued or in flight before the webhook answers 503", &opt.queue_limit),
  F("audit-max-clock-skew", KT_DURATION, "1h", "refuse events stamped further than this ahead of our clock (clock_skew; 0 = never)", &opt.max_skew),
  F("audit-consumer-workers", KT_INT, "2", "consumer threads (= queue partitions)", &opt.workers),
  F("audit-consumer-filter-cluster-name", KT_STR, "", "only this cluster", &opt.only_cluster),
  F("audit-consumer-exclude-cluster-names", KT_STR, "", "drop these clusters (a,b)", &opt.exclude_clusters),
  F("audit-consumer-ignore-impersonate-username", KT_BOOL, "false", "title spans with the real user, not the impersonated one", &opt.ignore_impersonate),
  F("filter-exclude-types", KT_STR, "events,events.k8s.io/events,coordination.k8s.io/leases", "resources never traced (resource or group/resource)", &opt.exclude_types),
  F("filter-exclude-user-agent", KT_STR, "/leader-election,local-path-provisioner/", "drop events whose userAgent contains one of these", &opt.exclude_agents),
  F("filter-config-watch", KT_BOOL, "true", "apply exclude-regex of the ConfigMap default/kelemetry-filter-config live (needs a cluster client)", &opt.live_filter),
  F("filter-exclude-regex", KT_STR, "", "drop objects whose group/version/resource/namespace/name matches (POSIX ERE)", &opt.exclude_regex),
  F("diff-controller-redact-pattern", KT_STR, "", "objects (group/version/resource/namespace/name, POSIX ERE) whose content is never stored", &opt.redact_pattern),
  F("diff-cache-memory", KT_SIZE, "256Mi", "memory for last known object bodies (the rest stays in the store)", &opt.diff_cache_bytes),
  F("span-cache-max-entries", KT_INT, "1000000", "pseudo spans remembered in memory", &opt.span_cache_entries),
  F("aggregator-span-ttl", KT_DURATION, "30m", "length of one object trace window", &opt.span_ttl),
  F("aggregator-span-extra-ttl", KT_DURATION, "0", "extra span-cache lifetime past the window", &opt.span_extra_ttl),
  F("aggregator-reserve-ttl", KT_DURATION, "10s", "span-cache reservation lifetime", &opt.reserve_ttl),
  F("aggregator-pseudo-span-global-tags", KT_STR, "", "k=v,... added to object and link spans", &opt.pseudo_tags),
  F("aggregator-event-span-global-tags", KT_STR, "", "k=v,... added to audit and event spans", &opt.event_tags),
  F("owner-linker-enable", KT_BOOL, "true", "link objects to their controller owners", &opt.owner_linker),
  F("annotation-linker-enable", KT_BOOL, "true", "link objects by the kelemetry.kubewharf.io/parent-link annotation", &opt.annotation_linker),
  F("resource-tag-mapping", KT_STR, "pods#nodes:spec.nodeName", "resource[.group]#tag:path;tag:path,...", &opt.tag_mapping),
  F("resource-object-tag-enable", KT_BOOL, "true", "resource tags on object spans", &opt.res_obj_tag),
  F("resource-event-tag-enable", KT_BOOL, "true", "resource tags on audit spans of some verbs", &opt.res_event_tag),
  F("resource-event-tag-filter-verbs", KT_STR, "create", "verbs whose audit spans get resource tags", &opt.tag_verbs),
  F("jaeger-query-enable", KT_BOOL, "true", "serve the Jaeger query API and the UI", &opt.query_enable),
  F("query-address", KT_STR, "", "query API / UI listen address", &opt.query_address),
  F("query-port", KT_INT, "16686", "query API / UI port", &opt.query_port),
  F("query-tls-cert", KT_STR, "", "query API / UI: serve HTTPS with this PEM certificate", &opt.query_tls_cert),
  F("query-tls-key", KT_STR, "", "query API / UI: the PEM private key", &opt.query_tls_key),
  F("query-token-file", KT_STR, "", "query API / UI: accept these bearer tokens (one per line)", &opt.query_token_file),
  F("query-basic-auth-file", KT_STR, "", "query API / UI: accept these user:password lines (browsers)", &opt.query_basic_file),
  F("jaeger-cluster-names", KT_STR, "", "clusters offered as operations (empty = every cluster seen)", &opt.cluster_names),
  F("jaeger-transform-config-file", KT_STR, "", "display modes in the original's tfconfig YAML format (empty = the shipped ones)", &opt.tf_config),
  F("jaeger-trace-cache-ttl", KT_DURATION, "24h", "how long a search result's trace id stays valid", &opt.trace_cache_ttl),
  F("frontend-follow-link-limit", KT_INT, "10", "linked objects fetched per trace", &opt.follow_link_limit),
  F("ui-assets", KT_STR, "", "serve this directory as the UI instead of the built-in one", &opt.ui_assets),
  F("metrics-enable", KT_BOOL, "true", "serve Prometheus metrics", &opt.metrics_enable),
  F("metrics-address", KT_STR, "", "metrics listen address", &opt.metrics_address),
  F("metrics-port", KT_INT, "9090", "metrics port", &opt.metrics_port),
  F("kube-target-cluster", KT_STR, "", "name of the cluster the informers watch", &opt.kube_cluster),
  F("kube-config", KT_STR, "", "kubeconfig of the target cluster (empty = in-cluster service account)", &opt.kubeconfig),
  F("kube-config-paths", KT_STR, "", "kubeconfigs of named clusters: name=path,... (the target's too, else --kube-config)", &opt.kube_paths),
  F("kube-apiservers", KT_STR, "", "apiserver URLs of named clusters: name=url,... (replaces the kubeconfig's server)", &opt.kube_apiservers),
  F("kube-request-timeout", KT_STR, "", "request timeouts of named clusters: name=duration,... (default 1m); kelemetrix's request_latency_ratio when a request has no timeoutSeconds", &opt.kube_timeouts),
  F("kelemetrix-enable", KT_BOOL, "false", "Prometheus metrics derived from every audit event, as --kelemetrix-config-path lists them", &opt.kx_enable),
  F("kelemetrix-config-path", KT_STR, "examples/kelemetrix.toml", "kelemetrix metrics (TOML, the original's hack/kelemetrix.toml format); read at start, any error exits 2", &opt.kx_config),
  F("kelemetrix-debug-log-tags", KT_BOOL, "false", "kelemetrix: log each event's tags (debug level)", &opt.kx_log_tags),
  F("kelemetrix-debug-log-quantities", KT_BOOL, "false", "kelemetrix: log each event's quantities (debug level)", &opt.kx_log_quantities),
  F("kube-context", KT_STR, "", "kubeconfig context (empty = current-context)", &opt.kube_context),
  F("kube-qps", KT_INT, "50", "requests per second to the apiserver (watches not counted)", &opt.kube_qps),
  F("kube-burst", KT_INT, "100", "request burst to the apiserver", &opt.kube_burst),
  F("event-informer-enable", KT_BOOL, "false", "turn Kubernetes Events into span logs", &opt.event_enable),
  F("event-informer-configmap-namespace", KT_STR, "default", "event controller checkpoint namespace", &opt.cm_ns),
  F("event-informer-configmap-name", KT_STR, "kelemetry-event-controller", "event controller checkpoint ConfigMap", &opt.cm_name),
  F("event-informer-configmap-sync-interval", KT_DURATION, "5s", "how often the checkpoint is written", &opt.cm_sync),
  F("event-informer-leader-election-enable", KT_BOOL, "true", "event-informer: run only while holding a lease", &opt.event_le.enable),
  F("event-informer-leader-election-namespace", KT_STR, "default", "event-informer: namespace of the leases", &opt.event_le_ns),
  F("event-informer-leader-election-name", KT_STR, "kelemetry-event-informer-leader-election", "event-informer: lease name prefix (<name>-0..N-1)", &opt.event_le_name),
  F("event-informer-leader-election-lease-duration", KT_DURATION, "15s", "event-informer: lease duration", &opt.event_le.lease_us),
  F("event-informer-leader-election-renew-deadline", KT_DURATION, "10s", "event-informer: give up leading when not renewed within this", &opt.event_le.renew_deadline_us),
  F("event-informer-leader-election-retry-period", KT_DURATION, "2s", "event-informer: renew / retry period", &opt.event_le.retry_us),
  F("event-informer-leader-election-num-leaders", KT_INT, "1", "event-informer: how many processes lead at once", &opt.event_le_n),
  F("diff-controller-enable", KT_BOOL, "false", "watch every object and diff its versions", &opt.diff_enable),
  F("diff-controller-leader-election-enable", KT_BOOL, "true", "diff-controller: run only while holding a lease", &opt.diff_le.enable),
  F("diff-controller-leader-election-namespace", KT_STR, "default", "diff-controller: namespace of the leases", &opt.diff_le_ns),
  F("diff-controller-leader-election-name", KT_STR, "kelemetry-diff-controller-leader-election", "diff-controller: lease name prefix (<name>-0..N-1)", &opt.diff_le_name),
  F("diff-controller-leader-election-lease-duration", KT_DURATION, "15s", "diff-controller: lease duration", &opt.diff_le.lease_us),
  F("diff-controller-leader-election-renew-deadline", KT_DURATION, "10s", "diff-controller: give up leading when not renewed within this", &opt.diff_le.renew_deadline_us),
  F("diff-controller-leader-election-retry-period", KT_DURATION, "2s", "diff-controller: renew / retry period", &opt.diff_le.retry_us),
  F("diff-controller-leader-election-num-leaders", KT_INT, "2", "diff-controller: how many processes lead at once", &opt.diff_le_n),
  F("diff-decorator-enable", KT_BOOL, "false", "attach watch diffs even when this process runs no diff controller (shared store)", &opt.decorator_enable),
  F("diff-decorator-fetch-backoff", KT_DURATION, "1s", "poll period for a watch diff an event has no body for", &opt.fetch_backoff),
  F("diff-decorator-fetch-event-timeout", KT_DURATION, "15s", "stop polling this long after the event", &opt.fetch_event_timeout),
  F("diff-decorator-fetch-total-timeout", KT_DURATION, "10s", "stop polling this long after starting", &opt.fetch_total_timeout),
  F("diff-cache-patch-ttl", KT_DURATION, "10m", "how long watch diffs are kept", &opt.patch_ttl),
  F("diff-cache-snapshot-ttl", KT_DURATION, "10m", "how long creation/deletion snapshots are kept", &opt.snapshot_ttl),
  F("discovery-resync-interval", KT_DURATION, "1h", "how often the watched resource set is refreshed", &opt.discovery_resync),
  F("tracer-otel-endpoint", KT_STR, "", "export spans over OTLP/HTTP to this collector: http(s)://host:port/v1/traces, or host:port (empty = no export)", &opt.otel_endpoint),
  F("tracer-otel-insecure", KT_BOOL, "false", "a host:port endpoint is http://, not https://", &opt.otel_insecure),
  F("tracer-otel-encoding", KT_STR, "protobuf", "OTLP/HTTP body: protobuf or json", &opt.otel_encoding),
  F("tracer-otel-resource-attributes", KT_STR, "service.version=dev", "k=v,... on every exported resource, besides service.name = the span type", &opt.otel_res_attrs),
  F("tracer-otel-headers", KT_STR, "", "k=v,... HTTP headers of export requests (e.g. authorization)", &opt.otel_headers),
  F("tracer-otel-only", KT_BOOL, "false", "export spans without storing them (the query API then has none to show)", &opt.otel_only),
  F("tracer-otel-buffer-spans", KT_INT, "20000", "spans waiting for export before new ones are dropped (otlp_export_dropped_total)", &opt.otel_buffer_spans),
  F("tracer-otel-buffer-bytes", KT_SIZE, "128Mi", "encoded bytes waiting for export before new spans are dropped", &opt.otel_buffer_bytes),
  F("tracer-otel-batch-spans", KT_INT, "512", "spans per export request", &opt.otel_batch_spans),
  F("tracer-otel-batch-delay", KT_DURATION, "1s", "longest a span waits for its batch to fill", &opt.otel_batch_delay),
  F("tracer-otel-timeout", KT_DURATION, "10s", "timeout of one export request", &opt.otel_timeout),
  F("tracer-otel-retry-initial-interval", KT_DURATION, "500ms", "first wait before an export is retried (then doubled, with jitter)", &opt.otel_retry_initial),
  F("tracer-otel-retry-max-interval", KT_DURATION, "30s", "longest wait between retries, also the cap on a collector's Retry-After", &opt.otel_retry_max_interval),
  F("tracer-otel-retry-max-elapsed", KT_DURATION, "5m", "a batch still failing after this long is dropped", &opt.otel_retry_max),
  F("span-cache", KT_STR, "local", "where the span cache lives: local (memory + store), redis or etcd (shared by several processes)", &opt.span_kv.kind),
  F("span-cache-redis-address", KT_STR, "", "span cache on Redis: host:port", &opt.span_kv.redis_address),
  F("span-cache-redis-prefix", KT_STR, "/span/", "span cache on Redis: key prefix", &opt.span_kv.redis_prefix),
  F("span-cache-etcd-endpoints", KT_STR, "", "span cache on etcd: endpoint URLs, comma-separated", &opt.span_kv.etcd_endpoints),
  F("span-cache-etcd-prefix", KT_STR, "/span/", "span cache on etcd: key prefix", &opt.span_kv.etcd_prefix),
  F("span-cache-etcd-dial-timeout", KT_DURATION, "10s", "span cache on etcd or Redis: connect timeout", &opt.span_kv.dial_timeout_us),
  F("diff-cache", KT_STR, "local", "where watch diffs and snapshots live: local (memory + store), redis or etcd (shared by several processes)", &opt.diff_kv.kind),
  F("diff-cache-redis-address", KT_STR, "", "diff cache on Redis: host:port", &opt.diff_kv.redis_address),
  F("diff-cache-redis-prefix", KT_STR, "/diff/", "diff cache on Redis: key prefix", &opt.diff_kv.redis_prefix),
  F("diff-cache-etcd-endpoints", KT_STR, "", "diff cache on etcd: endpoint URLs, comma-separated", &opt.diff_kv.etcd_endpoints),
  F("diff-cache-etcd-prefix", KT_STR, "/diff/", "diff cache on etcd: key prefix", &opt.diff_kv.etcd_prefix),
  F("diff-cache-etcd-dial-timeout", KT_DURATION, "10s", "diff cache on etcd or Redis: connect timeout", &opt.diff_kv.dial_timeout_us),
  F("jaeger-trace-cache", KT_STR, "local", "where search results' trace ids live: local (memory + store), redis or etcd (shared by several frontends)", &opt.trace_kv.kind),
  F("jaeger-trace-cache-redis-address", KT_STR, "", "trace cache on Redis: host:port", &opt.trace_kv.redis_address),
  F("jaeger-trace-cache-redis-prefix", KT_STR, "/trace/", "trace cache on Redis: key prefix", &opt.trace_kv.redis_prefix),
  F("jaeger-trace-cache-etcd-endpoints", KT_STR, "", "trace cache on etcd: endpoint URLs, comma-separated", &opt.trace_kv.etcd_endpoints),
  F("jaeger-trace-cache-etcd-prefix", KT_STR, "/trace/", "trace cache on etcd: key prefix", &opt.trace_kv.etcd_prefix),
  F("jaeger-trace-cache-etcd-dial-timeout", KT_DURATION, "10s", "trace cache on etcd or Redis: connect timeout", &opt.trace_kv.dial_timeout_us),
  F("serve", KT_BOOL, "false", "replay: keep serving after the files are ingested", &opt.serve),
  F("progress", KT_BOOL, "true", "replay: draw a progress bar on a terminal", &opt.progress),
  F("mq", KT_STR, "local", "audit queue: local (in-process, with the write-ahead inbox) or redis (Redis Streams between webhook and consumer processes)", &opt.mq),
  F("mq-redis-address", KT_STR, "127.0.0.1:6379", "mq=redis: host:port of Redis (run it with appendonly yes, or a restart loses the queue)", &opt.mq_address),
  F("mq-redis-stream-prefix", KT_STR, "kelemetry:audit", "mq=redis: streams are <prefix>:0..N-1", &opt.mq_prefix),
  F("mq-redis-partitions", KT_INT, "8", "mq=redis: number of streams (every process of a deployment must agree)", &opt.mq_partitions),
  F("mq-redis-max-len", KT_INT, "100000", "mq=redis: unprocessed entries a stream holds before the webhook answers 503", &opt.mq_max_len),
  F("mq-redis-claim-idle", KT_DURATION, "10s", "mq=redis: partition lease lifetime; a dead consumer's pending entries idle this long are claimed", &opt.mq_claim_idle),
  F("audit-producer-enable", KT_BOOL, "true", "the webhook hands its events to the queue (false: no webhook in this process)", &opt.producer_enable),
  F("audit-producer-partition-key-type", KT_STR, "object", "mq=redis: what picks an event's stream: object (keeps each object's order), cluster or audit-id", &opt.mq_key),
  F("audit-consumer-enable", KT_BOOL, "true", "turn queued audit events into spans (false needs --mq=redis: a webhook-only process)", &opt.consumer_enable),
  F("audit-consumer-group", KT_STR, "kelemetry", "mq=redis: consumer group of the streams", &opt.mq_group),
};
#define NFLAGS (sizeof flags / sizeof flags[0])

struct app {
  struct kt_pipeline p;
  struct kt_frontend *frontend;
  struct kt_webhook webhook;
  struct kt_http *http_webhook, *http_metrics, *http_query;
  struct kt_auth webhook_auth, query_auth;
  struct kt_inbox *inbox;
  struct kt_store *inbox_db; /* embedded: inbox.db; else NULL (the inbox
                              * lives in the span store) */
  struct kt_informers *informers;
  struct kt_metric *m_queue_depth, *m_queue_limit, *m_diffcache, *m_arena_bytes;
  struct kt_metric *m_store_pending;
  struct kt_kelemetrix *kx; /* NULL unless --kelemetrix-enable */
  struct kt_mq_producer *mq_producer;  /* --mq=redis, producer enabled */
  struct kt_mq_consumer *mq_consumer;  /* --mq=redis, consumer enabled */
};

static int metrics_handle(void *ud, const struct kt_http_req *req,
                          struct kt_http_resp *resp)
{
  struct app *a = ud;
  if (a->p.consumer) {
    kt_series_set(kt_metric_series(a->m_queue_depth, NULL),
                  (double)kt_consumer_depth(a->p.consumer));
    kt_series_set(kt_metric_series(a->m_queue_limit, NULL),
                  (double)kt_consumer_limit(a->p.consumer));
  }
  if (a->p.store)
    kt_series_set(kt_metric_series(a->m_store_pending, NULL),
                  (double)kt_store_pending(a->p.store));
  if (a->p.dc)
    kt_series_set(kt_metric_series(a->m_diffcache, NULL),
                  (double)kt_diffcache_bytes(a->p.dc));
  struct kt_jmem_stats js;
  kt_jmem_stats(&js);
  kt_series_set(kt_metric_series(a->m_arena_bytes, NULL),
                (double)(js.bytes_used + js.bytes_free));
  size_t len;
  char *text = kt_metrics_render(kt_metrics_default(), &len);
  if (!text) {
    kt_http_error(resp, 500, "out of memory");
    return 0;
  }
  kt_http_set_body(resp, 200, "text/plain; version=0.0.4", text, len);
  return 0;
}

/* Read by jemalloc when the binary links it (unused otherwise). Its
 * default 10 s decay kept purging pages the consumers then faulted in
 * again (perf: clear_page ~5 % of their CPU); 30 s keeps the working set,
 * and a burst's peak is still returned within a minute. */
const char *malloc_conf = "dirty_decay_ms:30000,muzzy_decay_ms:30000";

static int replay_mode;

static int start_pipeline(struct app *a)
{
  char path[4096];
  int pg = !strcmp(opt.store_backend, "postgres");
  if (!pg && strcmp(opt.store_backend, "sqlite")) {
    kt_error("--storage-backend must be sqlite or postgres, not %s", opt.store_backend);
    return -EINVAL;
  }
  if (pg && (!*opt.pg_dsn || opt.pg_partition < 60000000 || opt.pg_pool < 1 ||
             opt.pg_pool > 64)) {
    kt_error("--storage-backend=postgres needs --storage-postgres-dsn, "
             "--storage-postgres-partition-interval >= 1m and "
             "--storage-postgres-pool 1..64");
    return -EINVAL;
  }
  if (!pg && mkdir(opt.data_dir, 0750) && errno != EEXIST) {
    kt_error("cannot create --data-dir %s: %s", opt.data_dir, strerror(errno));
    return -errno;
  }
  snprintf(path, sizeof path, "%s/kelemetry.db", opt.data_dir);
  struct kt_pipeline_opts po = {
      .db_path = path,
      .pg_dsn = pg ? opt.pg_dsn : NULL,
      .store = {.partition_us = opt.pg_partition, .pool = (unsigned)opt.pg_pool},
      .span_cache_entries = opt.span_cache_entries,
      .diff_cache_bytes = opt.diff_cache_bytes,
      .agg = {opt.span_ttl, opt.span_extra_ttl, opt.reserve_ttl,
              opt.pseudo_tags, opt.event_tags, opt.tag_mapping,
              opt.res_obj_tag, opt.res_event_tag, opt.tag_verbs,
              opt.owner_linker, opt.annotation_linker},
      .filter = {opt.exclude_types, opt.exclude_agents, opt.exclude_regex,
                 opt.only_cluster, opt.exclude_clusters},
      .redact_pattern = opt.redact_pattern,
      .consumer = {(unsigned)opt.workers, opt.queue_limit,
                   opt.ignore_impersonate, replay_mode, a->kx},
      .otlp = {.endpoint = opt.otel_endpoint, .insecure = opt.otel_insecure,
               .encoding = strcmp(opt.otel_encoding, "json") == 0 ? KT_OTLP_JSON
                                                                  : KT_OTLP_PROTOBUF,
               .resource_attributes = opt.otel_res_attrs,
               .headers = opt.otel_headers,
               .buffer_spans = (size_t)opt.otel_buffer_spans,
               .buffer_bytes = opt.otel_buffer_bytes,
               .batch_spans = (size_t)opt.otel_batch_spans,
               .batch_delay_us = opt.otel_batch_delay,
               .timeout_us = opt.otel_timeout,
               .backoff_initial_us = opt.otel_retry_initial,
               .backoff_max_us = opt.otel_retry_max_interval,
               .retry_max_elapsed_us = opt.otel_retry_max,
               /* the rest of the shutdown gets the other half */
               .flush_timeout_us = opt.shutdown_timeout / 2},
      .otlp_only = opt.otel_only,
      .span_cache = opt.span_kv, .diff_cache = opt.diff_kv};
  int rc = kt_pipeline_open(&po, &a->p);
  if (rc || replay_mode || !opt.durable)
    return rc;
  if (!pg) { /* its own database: a 200 never waits for the span writer */
    struct kt_store_opts io = {.batch_wait_us = -1, .writer_name = "kt-inbox",
                               .wal_bytes = 4 << 20};
    snprintf(path, sizeof path, "%s/inbox.db", opt.data_dir);
    if ((rc = kt_store_open_sqlite(path, &io, &a->inbox_db)))
      return rc;
  }
  /* What a crash left unprocessed is queued again before anything new. */
  rc = kt_inbox_new(a->inbox_db ? a->inbox_db : a->p.store, a->p.store,
                    a->p.consumer, opt.inbox_compress, &a->inbox);
  int n = rc ? rc : kt_inbox_recover(a->inbox);
  if (n > 0)
    kt_info("inbox: recovered %d unprocessed webhook requests", n);
  return n < 0 ? n : 0;
}

static int start_informers(struct app *a)
{
  opt.event_le.namespace = opt.event_le_ns;
  opt.event_le.name = opt.event_le_name;
  opt.event_le.num_leaders = (int)opt.event_le_n;
  opt.diff_le.namespace = opt.diff_le_ns;
  opt.diff_le.name = opt.diff_le_name;
  opt.diff_le.num_leaders = (int)opt.diff_le_n;
  struct kt_informers_opts io = {
      .cluster = *opt.kube_cluster ? opt.kube_cluster : opt.default_cluster,
      .kubeconfig = opt.kubeconfig, .context = opt.kube_context,
      .config_paths = opt.kube_paths, .apiservers = opt.kube_apiservers,
      .qps = (double)opt.kube_qps, .burst = (int)opt.kube_burst,
      .event_enable = opt.event_enable, .diff_enable = opt.diff_enable,
      .decorate = opt.decorator_enable, .live_filter = opt.live_filter,
      .exclude_types = opt.exclude_types, .redact_pattern = opt.redact_pattern,
      .discovery_resync_us = opt.discovery_resync,
      .patch_ttl_us = opt.patch_ttl, .snapshot_ttl_us = opt.snapshot_ttl,
      .fetch_backoff_us = opt.fetch_backoff,
      .fetch_event_timeout_us = opt.fetch_event_timeout,
      .fetch_total_timeout_us = opt.fetch_total_timeout,
      .cm_namespace = opt.cm_ns, .cm_name = opt.cm_name, .cm_sync_us = opt.cm_sync,
      .event_le = opt.event_le, .diff_le = opt.diff_le};
  return kt_informers_start(&io, &a->p, &a->informers);
}

static void note_cluster(const char *cluster, void *ud)
{
  struct app *a = ud;
  kt_frontend_note_cluster(a->frontend, cluster);
}

static struct kt_http_route webhook_routes[2];
static struct kt_http_route query_routes[64];
static struct kt_static ui;

/* The query API and the UI share :16686; the UI's catch-all goes last. */
static int start_query(struct app *a)
{
  size_t n = 0, nfe;
  char err[512];
  if (kt_modes_install(opt.tf_config, err, sizeof err)) {
    kt_error("--jaeger-transform-config-file: %s", err);
    return -EINVAL;
  }
  struct kt_frontend_opts fo = {opt.cluster_names, opt.trace_cache_ttl,
                                (int)opt.follow_link_limit, opt.span_ttl,
                                &opt.trace_kv};
  int rc = kt_frontend_new(&fo, a->p.store, &a->frontend);
  if (rc)
    return rc;
  const struct kt_http_route *fe = kt_frontend_routes(a->frontend, &nfe);
  for (size_t i = 0; i < nfe && n < 63; i++)
    query_routes[n++] = fe[i];
  ui.dir = opt.ui_assets;
  query_routes[n++] = (struct kt_http_route){"GET", "/*", kt_static_handle, &ui};
  struct kt_http_opts ho = {.address = opt.query_address,
                            .port = (int)opt.query_port, .body_limit = 1 << 20,
                            .threads = 2, .name = "query",
                            .tls_cert = opt.query_tls_cert, .tls_key = opt.query_tls_key,
                            .auth = &a->query_auth};
  return kt_http_start(&ho, query_routes, n, &a->http_query);
}
static struct kt_http_route metrics_routes[1];

static int start_servers(struct app *a)
{
  struct kt_metrics *r = kt_metrics_default();
  a->m_queue_depth = kt_metrics_gauge(r, "audit_queue_depth",
      "Audit events queued or in flight", NULL);
  a->m_queue_limit = kt_metrics_gauge(r, "audit_queue_limit",
      "Audit events the queue holds before refusing (503)", NULL);
  a->m_diffcache = kt_metrics_gauge(r, "diff_cache_bytes",
      "Bytes of last known object bodies held in memory", NULL);
  a->m_arena_bytes = kt_metrics_gauge(r, "json_arena_bytes",
      "Bytes of parsed audit documents' arenas, in use or kept for reuse", NULL);
  a->m_store_pending = kt_metrics_gauge(r, "store_pending_writes",
      "Span store writes queued or being committed", NULL);
  char err[512];
  int rc = 0;
  if (kt_auth_load(&a->webhook_auth, opt.webhook_token_file, NULL, err, sizeof err) ||
      kt_auth_load(&a->query_auth, opt.query_token_file, opt.query_basic_file, err,
                   sizeof err)) {
    kt_error("authentication: %s", err);
    return -EINVAL;
  }
  if (opt.query_enable)
    rc = start_query(a);
  if (!rc && opt.webhook_enable) {
    a->webhook = (struct kt_webhook){a->p.consumer, a->inbox,
                                     opt.default_cluster, note_cluster, a,
                                     a->mq_producer};
    webhook_routes[0] = (struct kt_http_route){"POST", "/audit", kt_webhook_handle, &a->webhook};
    webhook_routes[1] = (struct kt_http_route){"POST", "/audit/", kt_webhook_handle, &a->webhook};
    struct kt_http_opts ho = {.address = opt.http_address, .port = (int)opt.http_port,
                              .body_limit = opt.body_limit, .threads = 2,
                              .name = "webhook", .tls_cert = opt.tls_cert,
                              .tls_key = opt.tls_key, .tls_client_ca = opt.tls_client_ca,
                              .auth = &a->webhook_auth};
    rc = kt_http_start(&ho, webhook_routes, 2, &a->http_webhook);
  }
  if (!rc && opt.metrics_enable) {
    metrics_routes[0] = (struct kt_http_route){"GET", "/*", metrics_handle, a};
    struct kt_http_opts ho = {.address = opt.metrics_address,
                              .port = (int)opt.metrics_port, .body_limit = 1024,
                              .threads = 1, .name = "metrics"};
    rc = kt_http_start(&ho, metrics_routes, 1, &a->http_metrics);
  }
  return rc;
}

static pthread_mutex_t stop_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stop_cv = PTHREAD_COND_INITIALIZER;
static int stopping;

/* Deletes traces older than --storage-retention now and every 10 minutes.
 * Not run by `replay`, which is mostly used on old logs. */
static void *retention_main(void *p)
{
  struct app *a = p;
  pthread_mutex_lock(&stop_mu);
  while (!stopping) {
    pthread_mutex_unlock(&stop_mu);
    int64_t n = kt_store_retain(a->p.store, kt_now_us() - opt.retention);
    if (n > 0)
      kt_info("retention: deleted %lld spans", (long long)n);
    pthread_mutex_lock(&stop_mu);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 600;
    while (!stopping && pthread_cond_timedwait(&stop_cv, &stop_mu, &ts) == 0)
      ;
  }
  pthread_mutex_unlock(&stop_mu);
  return NULL;
}

static pthread_t retention_thread;
static int retention_started;

static void start_retention(struct app *a)
{
  retention_started = pthread_create(&retention_thread, NULL, retention_main, a) == 0;
}

static void stop_retention(void)
{
  pthread_mutex_lock(&stop_mu);
  stopping = 1;
  pthread_cond_broadcast(&stop_cv);
  pthread_mutex_unlock(&stop_mu);
  if (retention_started)
    pthread_join(retention_thread, NULL);
}

/* --mq: local is the in-process queue (producer and consumer are one);
 * redis puts Redis Streams between webhook processes and consumer
 * processes, and the streams replace the write-ahead inbox. */
static int mq_check(struct kt_mq_opts *mo)
{
  char err[256];
  *mo = (struct kt_mq_opts){opt.mq_address, opt.mq_prefix,
                            (unsigned)opt.mq_partitions, (size_t)opt.mq_max_len,
                            opt.mq_claim_idle, opt.mq_group, KT_MQ_KEY_OBJECT, 0};
  if (!strcmp(opt.mq, "local")) {
    return 0; /* kt_roles refused what cannot work with it */
  } else if (kt_mq_key_parse(opt.mq_key, &mo->key)) {
    snprintf(err, sizeof err, "--audit-producer-partition-key-type must be "
             "object, cluster or audit-id");
  } else if (opt.mq_partitions < 1 || opt.mq_partitions > 1024 || opt.mq_max_len < 1) {
    snprintf(err, sizeof err, "--mq-redis-partitions must be 1..1024, "
             "--mq-redis-max-len >= 1");
  } else if (!kt_mq_opts_check(mo, err, sizeof err)) {
    opt.durable = 0; /* a 200 means "in the stream": no inbox */
    return 0;
  }
  fprintf(stderr, "kelemetry: %s\n", err);
  return 2;
}

static int start_mq(struct app *a, const struct kt_mq_opts *mo)
{
  if (strcmp(opt.mq, "redis"))
    return 0;
  int rc = opt.webhook_enable ? kt_mq_producer_new(mo, &a->mq_producer) : 0;
  if (!rc && opt.consumer_enable)
    rc = kt_mq_consumer_start(mo, NULL, a->p.consumer, a->p.store,
                              &a->mq_consumer);
  return rc;
}

static void stop_mq(struct app *a)
{
  kt_mq_consumer_stop(a->mq_consumer);
  a->mq_consumer = NULL;
  kt_mq_producer_free(a->mq_producer);
  a->mq_producer = NULL;
}

/* Which components the flags run (kt_roles): refuses a combination where
 * an enabled component lacks what it needs; --print-components shows it. */
static char components[512]; /* the running ones, for the ready line */

static int roles_check(int replay, int print)
{
  if (!opt.producer_enable)
    opt.webhook_enable = 0; /* the producer is what the webhook feeds */
  struct kt_roles_flags f = {
      .webhook = opt.webhook_enable && !replay, .producer = opt.producer_enable,
      .consumer = opt.consumer_enable, .replay = replay,
      .event_informer = opt.event_enable && !replay,
      .diff_controller = opt.diff_enable && !replay,
      .diff_decorator = opt.decorator_enable,
      .query = opt.query_enable && (!replay || opt.serve),
      .metrics = opt.metrics_enable && (!replay || opt.serve),
      .kelemetrix = opt.kx_enable, .store_spans = !opt.otel_only,
      .mq = replay ? "local" : opt.mq, .span_cache = opt.span_kv.kind,
      .diff_cache = opt.diff_kv.kind, .trace_cache = opt.trace_kv.kind,
      .store = opt.store_backend, .otlp_endpoint = opt.otel_endpoint};
  struct kt_roles r;
  char err[256];
  if (kt_roles_resolve(&f, &r, err, sizeof err)) {
    fprintf(stderr, "kelemetry: %s\n", err);
    return 2;
  }
  if (print) {
    kt_roles_print(&f, &r, stdout);
    return 0;
  }
  kt_roles_export(&r);
  for (int c = 0; c < KT_C_COUNT; c++)
    if (r.on[c])
      snprintf(components + strlen(components),
               sizeof components - strlen(components), "%s%s",
               *components ? ", " : "", kt_component_name(c));
  return 0;
}

static int64_t shutdown_deadline;

/* Past --shutdown-timeout, exit without waiting further. */
static void *watchdog(void *p)
{
  while (kt_mono_us() < shutdown_deadline)
    usleep(50000);
  kt_error("shutdown took longer than --shutdown-timeout; exiting");
  _exit(1);
  return NULL;
}

static void stop_all(struct app *a)
{
  pthread_t t;
  shutdown_deadline = kt_mono_us() + opt.shutdown_timeout;
  pthread_create(&t, NULL, watchdog, NULL);
  pthread_detach(t);
  kt_http_stop(a->http_webhook); /* stop accepting first */
  kt_informers_stop(a->informers); /* leases released */
  stop_retention();
  stop_mq(a); /* before the consumer: its tickets acknowledge entries */
  kt_consumer_free(a->p.consumer); /* drain before the readers go */
  a->p.consumer = NULL;
  kt_informers_free(a->informers);
  kt_http_stop(a->http_query);
  kt_http_stop(a->http_metrics);
  kt_frontend_free(a->frontend);
  kt_pipeline_close(&a->p); /* drained: the inbox is empty again */
  kt_inbox_free(a->inbox);
  kt_store_close(a->inbox_db); /* after the spans: their commits delete */
  kt_auth_free(&a->webhook_auth);
  kt_auth_free(&a->query_auth);
  kt_kelemetrix_free(a->kx); /* the consumer that used it is gone */
}

static volatile int store_broken;
static pthread_t store_watch_thread;
static int store_watch_started;

/* A store that gave writes up cannot keep what the webhook acknowledges:
 * stop (non-zero exit) so that the supervisor restarts us and the inbox
 * recovers what was lost, rather than answer 503 forever. Ends at the
 * stop signal and is joined there: the store and *a go away after. */
static void *store_watch(void *p)
{
  struct app *a = p;
  pthread_mutex_lock(&stop_mu);
  while (!stopping) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 200000000;
    if (ts.tv_nsec >= 1000000000) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&stop_cv, &stop_mu, &ts);
    if (!stopping && ((a->p.store && kt_store_failed(a->p.store)) ||
                      (a->inbox_db && kt_store_failed(a->inbox_db)))) {
      kt_error("the store cannot write any more (disk full, read-only or I/O "
               "errors): stopping; nothing acknowledged is lost, it is "
               "recovered at the next start");
      store_broken = 1;
      kill(getpid(), SIGTERM);
      break;
    }
  }
  pthread_mutex_unlock(&stop_mu);
  return NULL;
}

static void wait_signal(struct app *a, const sigset_t *set)
{
  int sig;
  store_watch_started = pthread_create(&store_watch_thread, NULL, store_watch, a) == 0;
  sigwait(set, &sig);
  pthread_mutex_lock(&stop_mu);
  stopping = 1;
  pthread_cond_broadcast(&stop_cv);
  pthread_mutex_unlock(&stop_mu);
  if (store_watch_started)
    pthread_join(store_watch_thread, NULL);
  if (!store_broken)
    kt_info("received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
}

static int replay_files(struct app *a, char **files, int n)
{
  struct kt_replay_stats st = {0};
  int rc = 0;
  FILE *prog = opt.progress && isatty(2) ? stderr : NULL;
  for (int i = 0; i < n && !rc; i++)
    rc = kt_replay_file(a->p.consumer, files[i], opt.default_cluster, prog, &st);
  kt_consumer_wait_idle(a->p.consumer);
  kt_store_flush(a->p.store);
  struct kt_consumer_stats cs;
  kt_consumer_stats(a->p.consumer, &cs);
  kt_replay_summary(stdout, &st, &cs);
  if (!rc && st.accepted)
    note_cluster(opt.default_cluster, a);
  return rc;
}

/* The kelemetrix config is read before anything starts: a bad file is a
 * usage error (exit 2) with "file:line: reason". */
static int open_kelemetrix(struct app *a)
{
  char err[512];
  if (!opt.kx_enable)
    return 0;
  struct kt_kelemetrix_opts ko = {opt.kube_timeouts, opt.kx_log_tags,
                                  opt.kx_log_quantities, NULL};
  if (kt_kelemetrix_open(opt.kx_config, &ko, &a->kx, err, sizeof err)) {
    fprintf(stderr, "kelemetry: %s\n", err);
    return 2;
  }
  kt_info("kelemetrix: %zu metrics from %s", kt_kelemetrix_count(a->kx),
          opt.kx_config);
  return 0;
}

static int parse_flags(int argc, char **argv, int first, char **pos, int *npos)
{
  char err[512];
  if (kt_config_defaults(flags, NFLAGS))
    return 2;
  if (kt_config_args(flags, NFLAGS, argc, argv, first, pos, 64, npos, err,
                     sizeof err) ||
      (opt.config[0] && (kt_config_file(flags, NFLAGS, opt.config, err, sizeof err) ||
                         kt_config_args(flags, NFLAGS, argc, argv, first, pos,
                                        64, npos, err, sizeof err)))) {
    fprintf(stderr, "kelemetry: %s\n", err);
    return 2;
  }
  if (kt_kv_choice_check(&opt.span_kv, "span-cache", err, sizeof err) ||
      kt_kv_choice_check(&opt.diff_kv, "diff-cache", err, sizeof err) ||
      kt_kv_choice_check(&opt.trace_kv, "jaeger-trace-cache", err, sizeof err)) {
    fprintf(stderr, "kelemetry: %s\n", err);
    return 2;
  }
  if (kt_log_configure(opt.log_level, opt.log_format, opt.log_file)) {
    fprintf(stderr, "kelemetry: invalid --log-level or --log-format\n");
    return 2;
  }
  if (opt.workers < 1 || opt.workers > 64 || opt.queue_limit < 1 ||
      opt.span_ttl < 60000000) {
    fprintf(stderr, "kelemetry: --audit-consumer-workers must be 1..64, "
            "--audit-queue-limit >= 1, --aggregator-span-ttl >= 1m\n");
    return 2;
  }
  if ((strcmp(opt.otel_encoding, "protobuf") && strcmp(opt.otel_encoding, "json")) ||
      opt.otel_buffer_spans < 1 || opt.otel_batch_spans < 1 ||
      (opt.otel_only && !*opt.otel_endpoint)) {
    fprintf(stderr, "kelemetry: --tracer-otel-encoding must be protobuf or json, "
            "--tracer-otel-buffer-spans and --tracer-otel-batch-spans >= 1, "
            "--tracer-otel-only needs --tracer-otel-endpoint\n");
    return 2;
  }
  return 0;
}

int main(int argc, char **argv)
{
  if (argc > 1 && strcmp(argv[1], "scan") == 0)
    return kt_scan_main(argc - 2, argv + 2, stdout);
  int replay = argc > 1 && strcmp(argv[1], "replay") == 0;
  int kube_check = argc > 1 && strcmp(argv[1], "kube-check") == 0;
  replay_mode = replay;
  char *files[64];
  int nfiles = 0;
  int rc = parse_flags(argc, argv, replay || kube_check ? 2 : 1, files, &nfiles);
  if (rc)
    return rc;
  kt_audit_set_max_future(opt.max_skew);
  if (kube_check)
    return kt_kubecheck(opt.kubeconfig, opt.kube_context, stdout);
  if (opt.help) {
    printf("usage: kelemetry [flags]\n       kelemetry replay [flags] FILE...\n"
           "       kelemetry scan [METRICS_URL...]\n"
           "       kelemetry kube-check [--kube-config FILE] [--kube-context NAME]\n\n");
    kt_config_usage(stdout, flags, NFLAGS);
    return 0;
  }
  if (opt.version) {
    printf("kelemetry %s\n", KT_VERSION);
    return 0;
  }
  if (opt.print_components)
    return roles_check(replay, 1);
  if (!replay && nfiles) {
    fprintf(stderr, "kelemetry: unexpected argument %s\n", files[0]);
    return 2;
  }
  if (replay && !nfiles) {
    fprintf(stderr, "kelemetry: replay needs at least one FILE (or -)\n");
    return 2;
  }
  /* Signals go to sigwait() in main, never to a server thread. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);
  /* Webhook bodies and object bodies are large and short-lived: keep glibc
   * from mapping and unmapping (and zeroing) fresh pages for each one. */
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  /* Audit documents are parsed into arenas (docs/internals/jmem.md). */
  if (kt_jmem_install())
    kt_warn("cannot reserve the JSON arenas; parsing on the heap");
  struct app a = {0};
  struct kt_mq_opts mo;
  if (roles_check(replay, 0) || open_kelemetrix(&a) || (!replay && mq_check(&mo)))
    return 2;
  rc = start_pipeline(&a);
  if (!rc && !replay)
    rc = start_mq(&a, &mo);
  if (!rc && !replay)
    rc = start_informers(&a);
  if (!rc && (!replay || opt.serve))
    rc = start_servers(&a);
  if (!rc && replay)
    rc = replay_files(&a, files, nfiles);
  if (!rc && !replay && opt.retention > 0)
    start_retention(&a);
  if (!rc && (!replay || opt.serve)) {
    kt_info("kelemetry %s ready: webhook :%ld, UI and query API :%ld, "
            "metrics :%ld, spans in %s", KT_VERSION, opt.http_port,
            opt.query_port, opt.metrics_port,
            strcmp(opt.store_backend, "postgres") ? opt.data_dir : "PostgreSQL");
    kt_info("components: %s", components);
    wait_signal(&a, &set);
  }
  stop_all(&a);
  return rc || store_broken ? 1 : 0;
}
