{{- define "cmkd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cmkd.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "cmkd.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "cmkd.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "cmkd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cmkd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "cmkd.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "cmkd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "cmkd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "cmkd.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Where the pod mounts what cmkd reads and writes. */}}
{{- define "cmkd.configDir" -}}/etc/cmkd{{- end -}}
{{- define "cmkd.dataDir" -}}/var/lib/cmkd{{- end -}}
{{- define "cmkd.natsCredsFile" -}}/etc/cmkd-nats/nats.creds{{- end -}}

{{- define "cmkd.validate" -}}
{{- if not (has .Values.store.driver (list "sqlite" "postgres")) -}}
{{- fail (printf "store.driver %q: want sqlite or postgres" .Values.store.driver) -}}
{{- end -}}
{{- if and (eq .Values.store.driver "sqlite") (gt (int .Values.replicaCount) 1) -}}
{{- fail "store.driver sqlite runs one replica: set replicaCount 1, or use postgres" -}}
{{- end -}}
{{- if and (eq .Values.store.driver "postgres") (not .Values.store.postgres.dsnSecret.name) -}}
{{- fail "store.postgres.dsnSecret.name is required with store.driver postgres" -}}
{{- end -}}
{{- if not (has .Values.azure.credential (list "workload" "managed" "default")) -}}
{{- fail (printf "azure.credential %q: want workload, managed or default" .Values.azure.credential) -}}
{{- end -}}
{{- if and .Values.webhook.enabled (not .Values.webhook.sharedSecret.name) (not .Values.webhook.audience) -}}
{{- fail "webhook.enabled needs webhook.sharedSecret.name or webhook.audience: cmkd accepts only authenticated deliveries" -}}
{{- end -}}
{{- if and .Values.nats.createStreams .Values.nats.checkStreams -}}
{{- fail "nats.createStreams and nats.checkStreams exclude each other: cmkd either owns its streams or checks yours" -}}
{{- end -}}
{{- end -}}

{{/*
cmkd.yaml: built from the values, then .Values.config merged over it.
Secrets never appear here: they arrive as CMKD_* environment variables.
*/}}
{{- define "cmkd.config" -}}
{{- $v := .Values -}}
{{- $store := dict "driver" $v.store.driver -}}
{{- if eq $v.store.driver "sqlite" -}}
{{- $_ := set $store "dsn" (printf "%s/cmkd.db" (include "cmkd.dataDir" .)) -}}
{{- end -}}
{{- $kv := dict "credential" $v.azure.credential -}}
{{- with $v.azure.clientId }}{{ $_ := set $kv "client_id" . }}{{ end -}}
{{- with $v.azure.tenantId }}{{ $_ := set $kv "tenant_id" . }}{{ end -}}
{{- with $v.keyvault.vaults }}{{ $_ := set $kv "vaults" . }}{{ end -}}
{{- with $v.keyvault.dnsSuffixes }}{{ $_ := set $kv "dns_suffixes" . }}{{ end -}}
{{- with $v.keyvault.platformKey }}{{ $_ := set $kv "platform_key" . }}{{ end -}}
{{- with $v.keyvault.managedHSMs }}{{ $_ := set $kv "managed_hsms" . }}{{ end -}}
{{- $nats := dict "url" $v.nats.url -}}
{{- if $v.nats.createStreams }}{{ $_ := set $nats "create_streams" true }}{{ end -}}
{{- if $v.nats.checkStreams }}{{ $_ := set $nats "check_streams" true }}{{ end -}}
{{- if $v.nats.credsSecret.name }}{{ $_ := set $nats "creds_file" (include "cmkd.natsCredsFile" .) }}{{ end -}}
{{- $sources := dict -}}
{{- if $v.eventgrid.endpoint -}}
{{- $_ := set $sources "eventgrid" (dict "endpoint" $v.eventgrid.endpoint "topic" $v.eventgrid.topic "subscription" $v.eventgrid.subscription) -}}
{{- end -}}
{{- if $v.webhook.enabled -}}
{{- $wh := dict "listen" (printf ":%d" (int $v.webhook.port)) "path" $v.webhook.path -}}
{{- with $v.webhook.audience }}{{ $_ := set $wh "audience" . }}{{ end -}}
{{- with $v.webhook.issuer }}{{ $_ := set $wh "issuer" . }}{{ end -}}
{{- with $v.webhook.jwksURL }}{{ $_ := set $wh "jwks_url" . }}{{ end -}}
{{- with $v.webhook.allowedApplications }}{{ $_ := set $wh "allowed_applications" . }}{{ end -}}
{{- if $v.webhook.enqueue }}{{ $_ := set $wh "enqueue" true }}{{ end -}}
{{- $_ := set $sources "webhook" $wh -}}
{{- end -}}
{{- if $v.nats.queue -}}
{{- $_ := set $sources "queue" (dict "enabled" true) -}}
{{- end -}}
{{- $cfg := dict "store" $store "keyvault" $kv "nats" $nats "http" (dict "listen" (printf ":%d" (int $v.http.port))) -}}
{{- if $sources }}{{ $_ := set $cfg "sources" $sources }}{{ end -}}
{{- with $v.status.eventgridEndpoint }}{{ $_ := set $cfg "status" (dict "eventgrid" (dict "endpoint" .)) }}{{ end -}}
{{- $cfg = mergeOverwrite $cfg (deepCopy $v.config) -}}
{{- toYaml $cfg -}}
{{- end -}}
