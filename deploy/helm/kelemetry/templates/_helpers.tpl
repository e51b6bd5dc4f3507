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

{{/* Topologies that do not work are refused, not rendered. */}}
{{- define "kelemetry.validate" -}}
{{- if eq .Values.topology "distributed" -}}
{{- fail "topology=distributed needs shared storage: not available yet (kelemetry-c has only the embedded SQLite store, which pods cannot share). Use topology=allInOne." -}}
{{- else if ne .Values.topology "allInOne" -}}
{{- fail (printf "topology must be allInOne (or distributed, not available yet), not %q" .Values.topology) -}}
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
{{- end -}}

{{/*
The container args: every kelemetry flag the chart sets, from the values.
A flag is written only if `kelemetry --help` lists it (checked by
tests/e2e/test_deploy.py).
*/}}
{{- define "kelemetry.args" -}}
{{- $v := .Values -}}
{{- $ns := .Release.Namespace -}}
{{- $authKeys := splitList "," (include "kelemetry.authKeys" .) -}}
- {{ printf "--log-level=%v" $v.log.level | quote }}
- {{ printf "--log-format=%v" $v.log.format | quote }}
- "--data-dir=/var/lib/kelemetry"
- {{ printf "--storage-retention=%v" $v.storage.retention | quote }}
- {{ printf "--http-port=%v" $v.containerPorts.webhook | quote }}
- {{ printf "--query-port=%v" $v.containerPorts.http | quote }}
- {{ printf "--metrics-port=%v" $v.containerPorts.metrics | quote }}
{{- /* clusters */}}
- {{ printf "--kube-target-cluster=%s" (include "kelemetry.targetCluster" .) | quote }}
- {{ printf "--audit-default-cluster=%s" (include "kelemetry.targetCluster" .) | quote }}
{{- $paths := list -}}
{{- range $c := $v.clusters -}}
{{- if $c.kubeconfig.secretName -}}
{{- $paths = append $paths (printf "%s=/etc/kelemetry/clusters/%s/kubeconfig" $c.name $c.name) -}}
{{- end -}}
{{- end -}}
{{- if $paths }}
- {{ printf "--kube-config-paths=%s" (join "," $paths) | quote }}
{{- end }}
- {{ printf "--kube-qps=%v" $v.kube.qps | quote }}
- {{ printf "--kube-burst=%v" $v.kube.burst | quote }}
{{- /* webhook */}}
- {{ printf "--audit-webhook-enable=%v" $v.webhook.enabled | quote }}
- {{ printf "--audit-webhook-durable=%v" $v.webhook.durable | quote }}
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
{{- /* query API and UI */}}
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
- {{ printf "--metrics-enable=%v" $v.metrics.enabled | quote }}
{{- /* informers */}}
{{- $ev := $v.informers.event }}
- {{ printf "--event-informer-enable=%v" $ev.enabled | quote }}
{{- if $ev.enabled }}
- {{ printf "--event-informer-leader-election-enable=%v" $ev.leaderElection.enabled | quote }}
- {{ printf "--event-informer-leader-election-namespace=%s" (default $ns $ev.leaderElection.namespace) | quote }}
- {{ printf "--event-informer-leader-election-name=%v" $ev.leaderElection.name | quote }}
- {{ printf "--event-informer-leader-election-lease-duration=%v" $ev.leaderElection.leaseDuration | quote }}
- {{ printf "--event-informer-leader-election-renew-deadline=%v" $ev.leaderElection.renewDeadline | quote }}
- {{ printf "--event-informer-leader-election-retry-period=%v" $ev.leaderElection.retryPeriod | quote }}
- {{ printf "--event-informer-configmap-namespace=%s" (default $ns $ev.checkpoint.namespace) | quote }}
- {{ printf "--event-informer-configmap-name=%v" $ev.checkpoint.name | quote }}
- {{ printf "--event-informer-configmap-sync-interval=%v" $ev.checkpoint.syncInterval | quote }}
{{- end }}
{{- $df := $v.informers.diff }}
- {{ printf "--diff-controller-enable=%v" $df.enabled | quote }}
{{- if $df.enabled }}
- {{ printf "--diff-controller-leader-election-enable=%v" $df.leaderElection.enabled | quote }}
- {{ printf "--diff-controller-leader-election-namespace=%s" (default $ns $df.leaderElection.namespace) | quote }}
- {{ printf "--diff-controller-leader-election-name=%v" $df.leaderElection.name | quote }}
- {{ printf "--diff-controller-leader-election-lease-duration=%v" $df.leaderElection.leaseDuration | quote }}
- {{ printf "--diff-controller-leader-election-renew-deadline=%v" $df.leaderElection.renewDeadline | quote }}
- {{ printf "--diff-controller-leader-election-retry-period=%v" $df.leaderElection.retryPeriod | quote }}
{{- end }}
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
- {{ printf "--aggregator-span-ttl=%v" $v.aggregator.spanTtl | quote }}
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
{{- range $a := $v.extraArgs }}
- {{ $a | quote }}
{{- end }}
{{- end -}}
