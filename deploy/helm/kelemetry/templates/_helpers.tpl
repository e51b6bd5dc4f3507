{{/* Names and labels. */}}
{{- define "kelemetry.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kelemetry.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "kelemetry.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kelemetry.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kelemetry.labels" -}}
{{ include "kelemetry.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{- define "kelemetry.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kelemetry.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kelemetry.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The cluster the informers watch. */}}
{{- define "kelemetry.targetCluster" -}}
{{- if .Values.targetCluster -}}
{{- .Values.targetCluster -}}
{{- else if .Values.clusters -}}
{{- (index .Values.clusters 0).name -}}
{{- else -}}
default
{{- end -}}
{{- end -}}

{{/* The Secret with the credential files, and the keys it holds. */}}
{{- define "kelemetry.authSecret" -}}
{{- default (printf "%s-auth" (include "kelemetry.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}

{{- define "kelemetry.authKeys" -}}
{{- $keys := list -}}
{{- if .Values.auth.existingSecret -}}
{{- $keys = .Values.auth.existingSecretKeys -}}
{{- else -}}
{{- if .Values.auth.webhookTokens }}{{ $keys = append $keys "webhook-tokens" }}{{ end -}}
{{- if .Values.auth.queryTokens }}{{ $keys = append $keys "query-tokens" }}{{ end -}}
{{- if .Values.auth.queryBasicAuth }}{{ $keys = append $keys "query-basic-auth" }}{{ end -}}
{{- end -}}
{{- join "," $keys -}}
{{- end -}}

{{/* Namespaces holding the leases and the event checkpoint ConfigMap. */}}
{{- define "kelemetry.leaseNamespaces" -}}
{{- $i := .Values.informers -}}
{{- $nss := list -}}
{{- if $i.event.enabled -}}
{{- $nss = append $nss (default .Release.Namespace $i.event.leaderElection.namespace) -}}
{{- $nss = append $nss (default .Release.Namespace $i.event.checkpoint.namespace) -}}
{{- end -}}
{{- if $i.diff.enabled -}}
{{- $nss = append $nss (default .Release.Namespace $i.diff.leaderElection.namespace) -}}
{{- end -}}
{{- join "," (uniq $nss) -}}
{{- end -}}

{{/* Topologies and combinations that cannot work are refused, not rendered. */}}
{{- define "kelemetry.validate" -}}
{{- if not (has .Values.topology (list "allInOne" "distributed")) -}}
{{- fail (printf "topology must be allInOne or distributed, not %q" .Values.topology) -}}
{{- end -}}
{{- if and .Values.webhook.tls.enabled (not .Values.webhook.tls.secretName) -}}
{{- fail "webhook.tls.enabled needs webhook.tls.secretName (a Secret with tls.crt, tls.key and, with clientCA, ca.crt)" -}}
{{- end -}}
{{- if not (or .Values.metrics.enabled .Values.webhook.enabled) -}}
{{- fail "the probes need metrics.enabled or webhook.enabled" -}}
{{- end -}}
{{- if and .Values.query.tls.enabled (not .Values.query.tls.secretName) -}}
{{- fail "query.tls.enabled needs query.tls.secretName (a Secret with tls.crt and tls.key)" -}}
{{- end -}}
{{- if eq .Values.topology "distributed" -}}
{{- include "kelemetry.validateDistributed" . -}}
{{- end -}}
{{- end -}}

{{- define "kelemetry.validateDistributed" -}}
{{- $v := .Values -}}
{{- if not $v.metrics.enabled -}}
{{- fail "topology=distributed needs metrics.enabled: every role's probes ask GET /metrics" -}}
{{- end -}}
{{- if not $v.webhook.enabled -}}
{{- fail "topology=distributed needs webhook.enabled: the consumers receive the audit events through the webhook" -}}
{{- end -}}
{{- if $v.postgres.bundled -}}
{{- if not $v.postgres.password -}}
{{- fail "postgres.bundled needs postgres.password (the password of the bundled PostgreSQL's user kelemetry), or set postgres.bundled=false and postgres.external.dsnSecret" -}}
{{- end -}}
{{- else if not $v.postgres.external.dsnSecret.name -}}
{{- fail "postgres.bundled=false needs postgres.external.dsnSecret.name: a Secret whose key postgres.external.dsnSecret.key holds a libpq DSN (host=... port=... user=... password=... dbname=...)" -}}
{{- end -}}
{{- if and (not $v.redis.bundled) (not $v.redis.external.address) -}}
{{- fail "redis.bundled=false needs redis.external.address (host:port): the audit queue lives in Redis" -}}
{{- end -}}
{{- range $name, $type := $v.caches -}}
{{- if not (has $type (list "redis" "etcd")) -}}
{{- fail (printf "caches.%s must be redis or etcd in topology=distributed (a local cache is not shared between pods), not %q" $name $type) -}}
{{- end -}}
{{- if and (eq $type "etcd") (not $v.etcd.endpoints) (not $v.etcd.bundled) -}}
{{- fail (printf "caches.%s=etcd needs etcd.endpoints (your etcd) or etcd.bundled=true" $name) -}}
{{- end -}}
{{- end -}}
{{- if $v.etcd.bundled -}}
{{- if $v.etcd.endpoints -}}
{{- fail "etcd.bundled=true and etcd.endpoints: choose one (endpoints are for an external etcd)" -}}
{{- end -}}
{{- if not (has "etcd" (list $v.caches.span $v.caches.diff $v.caches.trace)) -}}
{{- fail "etcd.bundled=true but no cache uses etcd: set caches.span, caches.diff or caches.trace to etcd, or etcd.bundled=false" -}}
{{- end -}}
{{- if lt (int $v.etcd.replicas) 1 -}}
{{- fail "etcd.replicas must be at least 1" -}}
{{- end -}}
{{- if and (not $v.etcd.persistence.enabled) (gt (int $v.etcd.replicas) 1) -}}
{{- fail "etcd.persistence.enabled=false needs etcd.replicas=1: a member restarted without its data dir is refused by its peers and crash-loops" -}}
{{- end -}}
{{- if not (has $v.etcd.initialClusterState (list "new" "existing")) -}}
{{- fail "etcd.initialClusterState must be new or existing" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A role's ServiceAccount (topology=distributed): one per role, so that
RBAC can differ. dict "ctx" $ "role" "informers" */}}
{{- define "kelemetry.roleServiceAccountName" -}}
{{- if .ctx.Values.serviceAccount.create -}}
{{- printf "%s-%s" (include "kelemetry.serviceAccountName" .ctx) .role | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- include "kelemetry.serviceAccountName" .ctx -}}
{{- end -}}
{{- end -}}

{{/* The roles rendered in topology=distributed, comma-separated. */}}
{{- define "kelemetry.roles" -}}
{{- $roles := list -}}
{{- if or .Values.informers.event.enabled .Values.informers.diff.enabled -}}
{{- $roles = append $roles "informers" -}}
{{- end -}}
{{- $roles = append $roles "consumer" -}}
{{- if .Values.query.enabled -}}
{{- $roles = append $roles "frontend" -}}
{{- end -}}
{{- join "," $roles -}}
{{- end -}}

{{/* Addresses of the engines as the kelemetry pods reach them. */}}
{{- define "kelemetry.redisAddress" -}}
{{- if .Values.redis.bundled -}}
{{- printf "%s-redis.%s.svc:%v" (include "kelemetry.fullname" .) .Release.Namespace .Values.redis.port -}}
{{- else -}}
{{- .Values.redis.external.address -}}
{{- end -}}
{{- end -}}

{{/* The caches' etcd client URLs: the bundled clients' Service, or yours. */}}
{{- define "kelemetry.etcdEndpoints" -}}
{{- if .Values.etcd.bundled -}}
{{- printf "http://%s-etcd.%s.svc:%v" (include "kelemetry.fullname" .) .Release.Namespace .Values.etcd.clientPort -}}
{{- else -}}
{{- join "," .Values.etcd.endpoints -}}
{{- end -}}
{{- end -}}

{{/* The bundled etcd's headless Service: the members' peer DNS names. */}}
{{- define "kelemetry.etcdPeerService" -}}
{{- printf "%s-etcd-peers" (include "kelemetry.fullname" .) -}}
{{- end -}}

{{- define "kelemetry.postgresHost" -}}
{{- printf "%s-postgres.%s.svc" (include "kelemetry.fullname" .) .Release.Namespace -}}
{{- end -}}

{{/* The Secret and key holding the libpq DSN (env KELEMETRY_POSTGRES_DSN). */}}
{{- define "kelemetry.postgresDsnSecret" -}}
{{- if .Values.postgres.bundled -}}
{{- printf "%s-postgres" (include "kelemetry.fullname" .) -}}
{{- else -}}
{{- .Values.postgres.external.dsnSecret.name -}}
{{- end -}}
{{- end -}}

{{- define "kelemetry.postgresDsnKey" -}}
{{- if .Values.postgres.bundled -}}
dsn
{{- else -}}
{{- default "dsn" .Values.postgres.external.dsnSecret.key -}}
{{- end -}}
{{- end -}}

{{/* Labels of a bundled engine (not app.kubernetes.io/name=kelemetry: `kelemetry
scan` and the kelemetry Services must not pick them). dict "ctx" $ "engine" "redis" */}}
{{- define "kelemetry.engineSelectorLabels" -}}
app.kubernetes.io/name: {{ .engine }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/part-of: kelemetry
{{- end -}}

{{- define "kelemetry.engineLabels" -}}
{{ include "kelemetry.engineSelectorLabels" . }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{/*
The container args: every kelemetry flag the chart sets, from the values,
for one role: dict "ctx" $ "role" R, R = allInOne (everything, embedded
SQLite) or, in topology=distributed, informers (event informer + diff
controller), consumer (webhook -> Redis stream -> consumer, diff decorator)
or frontend (query API and UI). A flag is written only if `kelemetry --help`
lists it (checked by tests/e2e/test_deploy.py).
*/}}
{{- define "kelemetry.args" -}}
{{- $c := .ctx -}}
{{- $role := .role -}}
{{- $v := $c.Values -}}
{{- $ns := $c.Release.Namespace -}}
{{- $all := eq $role "allInOne" -}}
{{- $inf := or $all (eq $role "informers") -}}
{{- $con := or $all (eq $role "consumer") -}}
{{- $fe := or $all (eq $role "frontend") -}}
{{- $writer := or $inf $con -}}
{{- $authKeys := splitList "," (include "kelemetry.authKeys" $c) -}}
- {{ printf "--log-level=%v" $v.log.level | quote }}
- {{ printf "--log-format=%v" $v.log.format | quote }}
- "--data-dir=/var/lib/kelemetry"
- {{ printf "--storage-retention=%v" $v.storage.retention | quote }}
- {{ printf "--http-port=%v" $v.containerPorts.webhook | quote }}
- {{ printf "--query-port=%v" $v.containerPorts.http | quote }}
- {{ printf "--metrics-port=%v" $v.containerPorts.metrics | quote }}
{{- /* clusters */}}
- {{ printf "--kube-target-cluster=%s" (include "kelemetry.targetCluster" $c) | quote }}
- {{ printf "--audit-default-cluster=%s" (include "kelemetry.targetCluster" $c) | quote }}
{{- $paths := list -}}
{{- range $cl := $v.clusters -}}
{{- if $cl.kubeconfig.secretName -}}
{{- $paths = append $paths (printf "%s=/etc/kelemetry/clusters/%s/kubeconfig" $cl.name $cl.name) -}}
{{- end -}}
{{- end -}}
{{- if and $paths $writer }}
- {{ printf "--kube-config-paths=%s" (join "," $paths) | quote }}
{{- end }}
- {{ printf "--kube-qps=%v" $v.kube.qps | quote }}
- {{ printf "--kube-burst=%v" $v.kube.burst | quote }}
{{- if not $all }}
{{- include "kelemetry.engineArgs" . }}
{{- end }}
{{- /* webhook */}}
{{- if $con }}
- {{ printf "--audit-webhook-enable=%v" $v.webhook.enabled | quote }}
{{- if $all }}
- {{ printf "--audit-webhook-durable=%v" $v.webhook.durable | quote }}
{{- else }}
{{- /* the Redis stream is the durable queue: 200 once the events are in it */}}
- "--audit-webhook-durable=false"
{{- end }}
- {{ printf "--audit-webhook-body-limit=%v" $v.webhook.bodyLimit | quote }}
- {{ printf "--audit-queue-limit=%v" $v.webhook.queueLimit | quote }}
- {{ printf "--audit-consumer-workers=%v" $v.webhook.consumerWorkers | quote }}
{{- if $v.webhook.tls.enabled }}
- "--http-tls-cert=/etc/kelemetry/tls/webhook/tls.crt"
- "--http-tls-key=/etc/kelemetry/tls/webhook/tls.key"
{{- if $v.webhook.tls.clientCA }}
- "--http-tls-client-ca=/etc/kelemetry/tls/webhook/ca.crt"
{{- end }}
{{- end }}
{{- if has "webhook-tokens" $authKeys }}
- "--audit-webhook-token-file=/etc/kelemetry/auth/webhook-tokens"
{{- end }}
{{- if not $all }}
- "--audit-producer-enable=true"
- "--audit-consumer-enable=true"
{{- end }}
{{- else }}
- "--audit-webhook-enable=false"
- "--audit-consumer-enable=false"
{{- end }}
{{- /* query API and UI */}}
{{- if $fe }}
- {{ printf "--jaeger-query-enable=%v" $v.query.enabled | quote }}
- {{ printf "--frontend-follow-link-limit=%v" $v.query.followLinkLimit | quote }}
{{- if $v.query.clusterNames }}
- {{ printf "--jaeger-cluster-names=%s" (join "," $v.query.clusterNames) | quote }}
{{- end }}
{{- if $v.query.tls.enabled }}
- "--query-tls-cert=/etc/kelemetry/tls/query/tls.crt"
- "--query-tls-key=/etc/kelemetry/tls/query/tls.key"
{{- end }}
{{- if has "query-tokens" $authKeys }}
- "--query-token-file=/etc/kelemetry/auth/query-tokens"
{{- end }}
{{- if has "query-basic-auth" $authKeys }}
- "--query-basic-auth-file=/etc/kelemetry/auth/query-basic-auth"
{{- end }}
{{- else }}
- "--jaeger-query-enable=false"
{{- end }}
- {{ printf "--metrics-enable=%v" $v.metrics.enabled | quote }}
{{- /* informers */}}
{{- $ev := $v.informers.event }}
{{- if $inf }}
- {{ printf "--event-informer-enable=%v" $ev.enabled | quote }}
{{- if $ev.enabled }}
- {{ printf "--event-informer-leader-election-enable=%v" $ev.leaderElection.enabled | quote }}
- {{ printf "--event-informer-leader-election-namespace=%s" (default $ns $ev.leaderElection.namespace) | quote }}
- {{ printf "--event-informer-leader-election-name=%v" $ev.leaderElection.name | quote }}
- {{ printf "--event-informer-leader-election-lease-duration=%v" $ev.leaderElection.leaseDuration | quote }}
- {{ printf "--event-informer-leader-election-renew-deadline=%v" $ev.leaderElection.renewDeadline | quote }}
- {{ printf "--event-informer-leader-election-retry-period=%v" $ev.leaderElection.retryPeriod | quote }}
{{- if not $all }}
- {{ printf "--event-informer-leader-election-num-leaders=%v" $ev.leaderElection.numLeaders | quote }}
{{- end }}
- {{ printf "--event-informer-configmap-namespace=%s" (default $ns $ev.checkpoint.namespace) | quote }}
- {{ printf "--event-informer-configmap-name=%v" $ev.checkpoint.name | quote }}
- {{ printf "--event-informer-configmap-sync-interval=%v" $ev.checkpoint.syncInterval | quote }}
{{- end }}
{{- else }}
- "--event-informer-enable=false"
{{- end }}
{{- $df := $v.informers.diff }}
{{- if $inf }}
- {{ printf "--diff-controller-enable=%v" $df.enabled | quote }}
{{- if $df.enabled }}
- {{ printf "--diff-controller-leader-election-enable=%v" $df.leaderElection.enabled | quote }}
- {{ printf "--diff-controller-leader-election-namespace=%s" (default $ns $df.leaderElection.namespace) | quote }}
- {{ printf "--diff-controller-leader-election-name=%v" $df.leaderElection.name | quote }}
- {{ printf "--diff-controller-leader-election-lease-duration=%v" $df.leaderElection.leaseDuration | quote }}
- {{ printf "--diff-controller-leader-election-renew-deadline=%v" $df.leaderElection.renewDeadline | quote }}
- {{ printf "--diff-controller-leader-election-retry-period=%v" $df.leaderElection.retryPeriod | quote }}
{{- if not $all }}
- {{ printf "--diff-controller-leader-election-num-leaders=%v" $df.leaderElection.numLeaders | quote }}
{{- end }}
{{- end }}
{{- else }}
- "--diff-controller-enable=false"
{{- end }}
{{- if and $con (not $all) }}
{{- /* watch diffs written by the informers' diff controller, read here */}}
- "--diff-decorator-enable=true"
{{- end }}
{{- if $writer }}
{{- if $df.redactPattern }}
- {{ printf "--diff-controller-redact-pattern=%s" $df.redactPattern | quote }}
{{- end }}
- {{ printf "--diff-cache-patch-ttl=%v" $df.patchTtl | quote }}
- {{ printf "--diff-cache-snapshot-ttl=%v" $df.snapshotTtl | quote }}
- {{ printf "--diff-cache-memory=%v" $v.diffCache.memory | quote }}
{{- /* filters, aggregator, linkers */}}
- {{ printf "--filter-exclude-types=%s" $v.filter.excludeTypes | quote }}
- {{ printf "--filter-exclude-user-agent=%s" $v.filter.excludeUserAgent | quote }}
{{- if $v.filter.excludeRegex }}
- {{ printf "--filter-exclude-regex=%s" $v.filter.excludeRegex | quote }}
{{- end }}
- {{ printf "--filter-config-watch=%v" $v.filter.configWatch | quote }}
{{- end }}
- {{ printf "--aggregator-span-ttl=%v" $v.aggregator.spanTtl | quote }}
{{- if $writer }}
{{- $tags := list -}}
{{- range $k, $t := $v.aggregator.globalTags.pseudoSpan -}}
{{- $tags = append $tags (printf "%s=%v" $k $t) -}}
{{- end -}}
{{- if $tags }}
- {{ printf "--aggregator-pseudo-span-global-tags=%s" (join "," $tags) | quote }}
{{- end }}
{{- $tags = list -}}
{{- range $k, $t := $v.aggregator.globalTags.eventSpan -}}
{{- $tags = append $tags (printf "%s=%v" $k $t) -}}
{{- end -}}
{{- if $tags }}
- {{ printf "--aggregator-event-span-global-tags=%s" (join "," $tags) | quote }}
{{- end }}
- {{ printf "--owner-linker-enable=%v" $v.linkers.ownerReference | quote }}
- {{ printf "--annotation-linker-enable=%v" $v.linkers.annotation | quote }}
{{- end }}
{{- range $a := $v.extraArgs }}
- {{ $a | quote }}
{{- end }}
{{- if not $all }}
{{- range $a := (index $v $role).extraArgs }}
- {{ $a | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
topology=distributed: the shared engines each role uses (dict "ctx" $ "role" R).
The store (PostgreSQL) everywhere; the span and diff caches where spans are
made (informers, consumer); the audit queue in the consumer; the trace
cache in the frontend; OTLP export where spans are made.
*/}}
{{- define "kelemetry.engineArgs" -}}
{{- $c := .ctx -}}
{{- $role := .role -}}
{{- $v := $c.Values -}}
{{- $redis := include "kelemetry.redisAddress" $c }}
- "--storage-backend=postgres"
{{- /* the DSN comes from a Secret through the environment ($(VAR) is expanded by the kubelet) */}}
- "--storage-postgres-dsn=$(KELEMETRY_POSTGRES_DSN)"
{{- $caches := list -}}
{{- if has $role (list "informers" "consumer") -}}
{{- $caches = list (list "span-cache" $v.caches.span) (list "diff-cache" $v.caches.diff) -}}
{{- else -}}
{{- $caches = list (list "jaeger-trace-cache" $v.caches.trace) -}}
{{- end -}}
{{- range $cc := $caches }}
{{- $flag := index $cc 0 }}
{{- $type := index $cc 1 }}
- {{ printf "--%s=%s" $flag $type | quote }}
{{- if eq $type "redis" }}
- {{ printf "--%s-redis-address=%s" $flag $redis | quote }}
{{- else }}
- {{ printf "--%s-etcd-endpoints=%s" $flag (include "kelemetry.etcdEndpoints" $c) | quote }}
{{- end }}
{{- end }}
{{- if eq $role "consumer" }}
- "--mq=redis"
- {{ printf "--mq-redis-address=%s" $redis | quote }}
- {{ printf "--mq-redis-partitions=%v" $v.mq.partitions | quote }}
- {{ printf "--audit-consumer-group=%v" $v.mq.consumerGroup | quote }}
- {{ printf "--audit-producer-partition-key-type=%v" $v.mq.partitionKeyType | quote }}
{{- end }}
{{- if and $v.otlp.endpoint (has $role (list "informers" "consumer")) }}
- {{ printf "--tracer-otel-endpoint=%v" $v.otlp.endpoint | quote }}
{{- $attrs := list -}}
{{- range $k, $a := $v.otlp.resourceAttributes -}}
{{- $attrs = append $attrs (printf "%s=%v" $k $a) -}}
{{- end -}}
{{- if $attrs }}
- {{ printf "--tracer-otel-resource-attributes=%s" (join "," $attrs) | quote }}
{{- end }}
{{- end }}
{{- end -}}
