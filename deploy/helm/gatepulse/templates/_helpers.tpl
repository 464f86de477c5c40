{{/*
Names, labels and the pieces the Deployment (store.mode postgres) and the StatefulSet
(store.mode embedded) share.
*/}}

{{/* The chart name, cut to 63 characters. */}}
{{- define "gatepulse.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the resources' names, cut to 63 characters. */}}
{{- define "gatepulse.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* name-version, for the helm.sh/chart label. */}}
{{- define "gatepulse.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The labels that select this release's pods. */}}
{{- define "gatepulse.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gatepulse.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The labels of every object. */}}
{{- define "gatepulse.labels" -}}
helm.sh/chart: {{ include "gatepulse.chart" . }}
{{ include "gatepulse.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "gatepulse.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "gatepulse.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Number of nodes: always 1 on the embedded store, else replicas (default 3). */}}
{{- define "gatepulse.replicas" -}}
{{- if eq .Values.store.mode "embedded" }}1
{{- else if hasKey .Values "replicas" }}{{ int .Values.replicas }}
{{- else }}3
{{- end }}
{{- end }}

{{/* The Secret holding the admin token and the master keys. */}}
{{- define "gatepulse.secretName" -}}
{{- default (include "gatepulse.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{- define "gatepulse.adminTokenKey" -}}
{{- if .Values.secrets.existingSecret }}{{ .Values.secrets.adminTokenKey }}{{ else }}admin-token{{ end }}
{{- end }}

{{- define "gatepulse.masterKeyKey" -}}
{{- if .Values.secrets.existingSecret }}{{ .Values.secrets.masterKeyKey }}{{ else }}master-key{{ end }}
{{- end }}

{{/* The Secret and key holding the PostgreSQL URL. */}}
{{- define "gatepulse.postgresSecretName" -}}
{{- default (include "gatepulse.fullname" .) .Values.postgres.existingSecret }}
{{- end }}

{{- define "gatepulse.postgresSecretKey" -}}
{{- if .Values.postgres.existingSecret }}{{ .Values.postgres.existingSecretKey }}{{ else }}postgres-url{{ end }}
{{- end }}

{{/* Whether the chart creates a Secret: for the token and keys, or for the URL. */}}
{{- define "gatepulse.createSecret" -}}
{{- if or (not .Values.secrets.existingSecret) (and (eq .Values.store.mode "postgres") .Values.postgres.url) }}true{{ end }}
{{- end }}

{{- define "gatepulse.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Refuses values that would give a cluster that cannot start or cannot work; each
message says what to set. values.schema.json checks each value's type and form; these
are the rules between values.
*/}}
{{- define "gatepulse.validate" -}}
{{- $v := .Values }}
{{- if eq $v.store.mode "embedded" }}
{{- if and (hasKey $v "replicas") (ne (int $v.replicas) 1) }}
{{- fail (printf "store.mode embedded runs exactly one node (a redb store is served by one process): leave replicas unset or set it to 1, not %v; several nodes need store.mode postgres" $v.replicas) }}
{{- end }}
{{- if or $v.postgres.url $v.postgres.existingSecret }}
{{- fail "postgres.url or postgres.existingSecret is set but store.mode is embedded: set store.mode postgres to use the database, or remove them" }}
{{- end }}
{{- else }}
{{- if and $v.postgres.url $v.postgres.existingSecret }}
{{- fail "set postgres.url or postgres.existingSecret, not both" }}
{{- end }}
{{- if not (or $v.postgres.url $v.postgres.existingSecret) }}
{{- fail "store.mode postgres needs a database: set postgres.url (postgres://user:password@host:5432/database) or postgres.existingSecret (a Secret holding that URL); the chart does not run PostgreSQL" }}
{{- end }}
{{- if ge (int $v.postgres.commitConcurrency) (int $v.postgres.poolSize) }}
{{- fail "postgres.commitConcurrency must be smaller than postgres.poolSize (claims and reads need connections too)" }}
{{- end }}
{{- end }}
{{- if not $v.secrets.existingSecret }}
{{- if lt (len $v.secrets.adminToken) 16 }}
{{- fail "secrets.adminToken must be at least 16 characters (e.g. `openssl rand -hex 32`), or name an existing Secret in secrets.existingSecret" }}
{{- end }}
{{- if not (trim $v.secrets.masterKey) }}
{{- fail "secrets.masterKey is required (endpoint secrets are encrypted under it): make one with `gp secrets generate-key --version 1`, or name an existing Secret in secrets.existingSecret" }}
{{- end }}
{{- end }}
{{- $c := $v.cluster }}
{{- if ge (int $c.trustMarginMs) (int $c.leaderTtlMs) }}
{{- fail "cluster.trustMarginMs must be less than cluster.leaderTtlMs" }}
{{- end }}
{{- if gt (mul 2 (int $c.electionIntervalMs)) (sub (int $c.leaderTtlMs) (int $c.trustMarginMs)) }}
{{- fail "cluster.electionIntervalMs must be at most half of cluster.leaderTtlMs - cluster.trustMarginMs (a leader renews at least twice within its trust window)" }}
{{- end }}
{{- if le (int $v.terminationGracePeriodSeconds) (int $v.shutdownGraceSecs) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be larger than shutdownGraceSecs (%v): Kubernetes would kill the server before it finished its in-flight work" $v.terminationGracePeriodSeconds $v.shutdownGraceSecs) }}
{{- end }}
{{- end }}

{{/*
The container's environment: GatePulse's configuration (GATEPULSE_*). Numbers go
through `int`: a float from a values file would print as 1e+06 past a million.
*/}}
{{- define "gatepulse.env" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
- name: GATEPULSE_LISTEN
  value: "0.0.0.0:8080"
- name: GATEPULSE_DATA_DIR
  value: /data
{{- if eq .Values.store.mode "postgres" }}
- name: GATEPULSE_STORE
  valueFrom:
    secretKeyRef:
      name: {{ include "gatepulse.postgresSecretName" . }}
      key: {{ include "gatepulse.postgresSecretKey" . }}
- name: GATEPULSE_POSTGRES__POOL_SIZE
  value: {{ int .Values.postgres.poolSize | quote }}
- name: GATEPULSE_POSTGRES__COMMIT_CONCURRENCY
  value: {{ int .Values.postgres.commitConcurrency | quote }}
- name: GATEPULSE_POSTGRES__CONNECT_TIMEOUT_SECS
  value: {{ int .Values.postgres.connectTimeoutSecs | quote }}
{{- if .Values.postgres.schema }}
- name: GATEPULSE_POSTGRES__SCHEMA
  value: {{ .Values.postgres.schema | quote }}
{{- end }}
{{- else }}
- name: GATEPULSE_STORE
  value: redb
- name: GATEPULSE_REDB__CACHE_SIZE_MIB
  value: {{ int .Values.embedded.cacheSizeMib | quote }}
{{- end }}
- name: GATEPULSE_ADMIN_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "gatepulse.secretName" . }}
      key: {{ include "gatepulse.adminTokenKey" . }}
- name: GATEPULSE_MASTER_KEY_FILE
  value: /etc/gatepulse/master-key/master-key
- name: GATEPULSE_SHUTDOWN_GRACE_SECS
  value: {{ int .Values.shutdownGraceSecs | quote }}
- name: GATEPULSE_LOG__FORMAT
  value: {{ .Values.log.format | quote }}
- name: GATEPULSE_LOG__LEVEL
  value: {{ .Values.log.level | quote }}
{{- with .Values.metrics.tokenSecret.name }}
- name: GATEPULSE_API__METRICS_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.metrics.tokenSecret.key }}
{{- end }}
- name: GATEPULSE_CLUSTER__NODE_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: GATEPULSE_CLUSTER__MODE
  value: {{ .Values.cluster.mode | quote }}
- name: GATEPULSE_CLUSTER__LEADER_TTL_MS
  value: {{ int .Values.cluster.leaderTtlMs | quote }}
- name: GATEPULSE_CLUSTER__ELECTION_INTERVAL_MS
  value: {{ int .Values.cluster.electionIntervalMs | quote }}
- name: GATEPULSE_CLUSTER__TRUST_MARGIN_MS
  value: {{ int .Values.cluster.trustMarginMs | quote }}
- name: GATEPULSE_CLUSTER__ADVERTISE_ADDRESS
  value: {{ default "$(POD_IP):8080" .Values.cluster.advertiseAddress | quote }}
{{- end }}

{{/*
The container's env list: the chart's variables, less those extraEnv sets (one entry
per name: server-side apply refuses a list with two), then extraEnv.
*/}}
{{- define "gatepulse.containerEnv" -}}
{{- $overridden := list }}
{{- range .Values.extraEnv }}
{{- $overridden = append $overridden .name }}
{{- end }}
{{- $env := list }}
{{- range (include "gatepulse.env" . | fromYamlArray) }}
{{- if not (has .name $overridden) }}
{{- $env = append $env . }}
{{- end }}
{{- end }}
{{- toYaml (concat $env (.Values.extraEnv | default (list))) }}
{{- end }}

{{/* The pod template of the Deployment and of the StatefulSet. */}}
{{- define "gatepulse.podTemplate" -}}
metadata:
  labels:
    {{- include "gatepulse.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- $annotations := dict }}
  {{- if include "gatepulse.createSecret" . }}
  {{- /* A changed Secret rolls the pods. */}}
  {{- $_ := set $annotations "checksum/secret" (include (print $.Template.BasePath "/secret.yaml") . | sha256sum) }}
  {{- end }}
  {{- if .Values.metrics.scrapeAnnotations }}
  {{- $_ := set $annotations "prometheus.io/scrape" "true" }}
  {{- $_ := set $annotations "prometheus.io/port" "8080" }}
  {{- $_ := set $annotations "prometheus.io/path" "/metrics" }}
  {{- end }}
  {{- $annotations = merge (deepCopy (.Values.podAnnotations | default (dict))) $annotations }}
  {{- with $annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "gatepulse.serviceAccountName" . }}
  automountServiceAccountToken: false
  # Kubernetes would otherwise give the pod GATEPULSE_SERVICE_HOST, GATEPULSE_PORT, …
  # for a Service named gatepulse, and the server refuses unknown GATEPULSE_ keys.
  enableServiceLinks: false
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: {{ int .Values.terminationGracePeriodSeconds }}
  containers:
    - name: gatepulse
      image: {{ include "gatepulse.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - serve
      ports:
        - name: http
          containerPort: 8080
          protocol: TCP
      env:
        {{- include "gatepulse.containerEnv" . | nindent 8 }}
      {{- with .Values.extraEnvFrom }}
      envFrom:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      startupProbe:
        httpGet:
          path: /healthz
          port: http
        {{- toYaml .Values.probes.startup | nindent 8 }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
        {{- toYaml .Values.probes.liveness | nindent 8 }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        {{- toYaml .Values.probes.readiness | nindent 8 }}
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      {{- with .Values.lifecycle }}
      lifecycle:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        - name: data
          mountPath: /data
        - name: tmp
          mountPath: /tmp
        - name: master-key
          mountPath: /etc/gatepulse/master-key
          readOnly: true
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    {{- if eq .Values.store.mode "postgres" }}
    - name: data
      {{- with .Values.dataEmptyDir }}
      emptyDir:
        {{- toYaml . | nindent 8 }}
      {{- else }}
      emptyDir: {}
      {{- end }}
    {{- end }}
    - name: tmp
      emptyDir: {}
    - name: master-key
      secret:
        secretName: {{ include "gatepulse.secretName" . }}
        defaultMode: 0440
        items:
          - key: {{ include "gatepulse.masterKeyKey" . }}
            path: master-key
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  affinity:
    {{- if .Values.affinity }}
    {{- toYaml .Values.affinity | nindent 4 }}
    {{- else }}
    podAntiAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
        - weight: 100
          podAffinityTerm:
            topologyKey: kubernetes.io/hostname
            labelSelector:
              matchLabels:
                {{- include "gatepulse.selectorLabels" . | nindent 16 }}
    {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
