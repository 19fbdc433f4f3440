{{/* Names */}}
{{- define "musubi.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "musubi.fullname" -}}
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

{{- define "musubi.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "musubi.selectorLabels" -}}
app.kubernetes.io/name: {{ include "musubi.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "musubi.labels" -}}
helm.sh/chart: {{ include "musubi.chart" . }}
{{ include "musubi.selectorLabels" . }}
app.kubernetes.io/version: {{ include "musubi.imageTag" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: musubi
{{- end }}

{{- define "musubi.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "musubi.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "musubi.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{- define "musubi.image" -}}
{{- printf "%s:%s" .Values.image.repository (include "musubi.imageTag" .) }}
{{- end }}

{{/*
Refuses values that would deploy something broken: several replicas need Redis (rate limits
and live updates are shared through it) and a real S3 store (the embedded one lives in one
pod's temporary directory).
*/}}
{{- define "musubi.validate" -}}
{{- if not .Values.database.existingSecret }}
{{- fail "database.existingSecret is required: the Secret holding DATABASE_URL (without it Musubi would start a private PostgreSQL inside the pod)" }}
{{- end }}
{{- if not .Values.s3.endpoint }}
{{- fail "s3.endpoint is required: without it Musubi keeps files inside the pod, lost with it" }}
{{- end }}
{{- if and (not .Values.redis.existingSecret) (or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1)) }}
{{- fail "redis.existingSecret is required with more than one replica: rate limits and live updates are shared through Redis" }}
{{- end }}
{{- if not .Values.config.publicUrl }}
{{- fail "config.publicUrl is required (MUSUBI_PUBLIC_URL)" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (not (dig "requests" "cpu" "" .Values.resources)) }}
{{- fail "autoscaling needs resources.requests.cpu: the CPU target is a share of it" }}
{{- end }}
{{- end }}

{{- define "musubi.trustProxy" -}}
{{- if kindIs "bool" .Values.config.trustProxy }}
{{- .Values.config.trustProxy | toString }}
{{- else }}
{{- .Values.ingress.enabled | toString }}
{{- end }}
{{- end }}

{{- define "musubi.ingressHost" -}}
{{- default (urlParse .Values.config.publicUrl).hostname .Values.ingress.host }}
{{- end }}

{{/*
The non-secret settings, as environment variable → string. The ConfigMap holds them for the
replicas; the migration Job gets them inline (as a pre-install hook it runs before the
ConfigMap exists).
*/}}
{{- define "musubi.configEnv" -}}
MUSUBI_ENV: {{ .Values.config.env | quote }}
MUSUBI_LISTEN: {{ printf "0.0.0.0:%d" (int .Values.containerPort) | quote }}
MUSUBI_PUBLIC_URL: {{ .Values.config.publicUrl | quote }}
MUSUBI_MIGRATE_ON_START: "false"
MUSUBI_DATA_DIR: "/tmp/musubi-data"
TMPDIR: "/tmp"
MUSUBI_LOG: {{ .Values.config.log | quote }}
MUSUBI_LOG_FORMAT: {{ .Values.config.logFormat | quote }}
MUSUBI_TRUST_PROXY: {{ include "musubi.trustProxy" . | quote }}
MUSUBI_FILE_MAX_MB: {{ .Values.config.fileMaxMb | toString | quote }}
MUSUBI_FILE_QUOTA_GB: {{ .Values.config.fileQuotaGb | toString | quote }}
MUSUBI_DB_MAX_CONNECTIONS: {{ .Values.database.maxConnections | toString | quote }}
MUSUBI_DB_TENANT_CONNECTIONS: {{ .Values.database.tenantConnections | toString | quote }}
MUSUBI_DB_ACQUIRE_TIMEOUT_SECS: {{ .Values.database.acquireTimeoutSecs | toString | quote }}
MUSUBI_S3_ENDPOINT: {{ .Values.s3.endpoint | quote }}
MUSUBI_S3_BUCKET: {{ .Values.s3.bucket | quote }}
MUSUBI_S3_REGION: {{ .Values.s3.region | quote }}
MUSUBI_S3_PATH_STYLE: {{ .Values.s3.pathStyle | toString | quote }}
MUSUBI_MAIL_FROM: {{ .Values.mail.from | quote }}
{{- with .Values.push.vapidSubject }}
MUSUBI_VAPID_SUBJECT: {{ . | quote }}
{{- end }}
{{- with .Values.tracing.otlpEndpoint }}
OTEL_EXPORTER_OTLP_ENDPOINT: {{ . | quote }}
OTEL_SERVICE_NAME: {{ $.Values.tracing.serviceName | quote }}
{{- end }}
{{- range $name, $value := .Values.config.extra }}
{{ $name }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/* The secret settings, as EnvVar objects referring to the existing Secrets. */}}
{{- define "musubi.secretEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.existingSecret | quote }}
      key: {{ .Values.database.urlKey | quote }}
{{- with .Values.redis.existingSecret }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ . | quote }}
      key: {{ $.Values.redis.urlKey | quote }}
{{- end }}
{{- with .Values.s3.existingSecret }}
- name: MUSUBI_S3_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ . | quote }}
      key: {{ $.Values.s3.accessKeyIdKey | quote }}
- name: MUSUBI_S3_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . | quote }}
      key: {{ $.Values.s3.secretAccessKeyKey | quote }}
{{- end }}
{{- with .Values.mail.existingSecret }}
- name: MUSUBI_SMTP_URL
  valueFrom:
    secretKeyRef:
      name: {{ . | quote }}
      key: {{ $.Values.mail.urlKey | quote }}
{{- end }}
{{- with .Values.push.existingSecret }}
- name: MUSUBI_VAPID_PRIVATE_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . | quote }}
      key: {{ $.Values.push.privateKeyKey | quote }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Volumes and mounts shared by the replicas and the migration Job. */}}
{{- define "musubi.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpVolume.sizeLimit | quote }}
{{- end }}

{{- define "musubi.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- end }}
