{{/*
Names, labels and selector labels, defined once for every template.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "pixelmesh.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The release's base name: fullnameOverride, else "<release>-<chart>" unless the release name already
contains the chart name. Truncated to leave room for the "-operator" / "-gateway" suffixes.
*/}}
{{- define "pixelmesh.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "pixelmesh.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "<chart>-<version>" for the helm.sh/chart label. */}}
{{- define "pixelmesh.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The operator's and the gateway's object names. */}}
{{- define "pixelmesh.operator.fullname" -}}
{{- printf "%s-operator" (include "pixelmesh.fullname" .) -}}
{{- end -}}

{{- define "pixelmesh.gateway.fullname" -}}
{{- printf "%s-gateway" (include "pixelmesh.fullname" .) -}}
{{- end -}}

{{/* Labels on every object. Call with (dict "context" $ "component" "operator"). */}}
{{- define "pixelmesh.labels" -}}
helm.sh/chart: {{ include "pixelmesh.chart" .context }}
{{ include "pixelmesh.selectorLabels" . }}
app.kubernetes.io/version: {{ .context.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .context.Release.Service }}
app.kubernetes.io/part-of: pixelmesh
{{- with .context.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The labels a component's selector matches: stable across upgrades. */}}
{{- define "pixelmesh.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pixelmesh.name" .context }}
app.kubernetes.io/instance: {{ .context.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end -}}

{{/* The operator's ServiceAccount name. */}}
{{- define "pixelmesh.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (include "pixelmesh.operator.fullname" .) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The image reference: repository@digest when a digest is set, else repository:tag (appVersion). */}}
{{- define "pixelmesh.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The namespaces the operator watches in namespaced mode (the release namespace when none are listed). */}}
{{- define "pixelmesh.watchNamespaces" -}}
{{- $namespaces := .Values.operator.watchNamespaces | default (list .Release.Namespace) -}}
{{- toJson (uniq $namespaces) -}}
{{- end -}}

{{/*
The gateway's regions as PIXELMESH_GATEWAY_REGIONS wants them: `name=url,url;name=url`, this
installation's region (with nats.urls) first, then gateway.regions in name order.
*/}}
{{- define "pixelmesh.gateway.regions" -}}
{{- $regions := list (printf "%s=%s" .Values.region (join "," .Values.nats.urls)) -}}
{{- range $name := keys .Values.gateway.regions | sortAlpha -}}
{{- if ne $name $.Values.region -}}
{{- $regions = append $regions (printf "%s=%s" $name (join "," (get $.Values.gateway.regions $name))) -}}
{{- end -}}
{{- end -}}
{{- join ";" $regions -}}
{{- end -}}

{{/* The gateway's settings (PIXELMESH_GATEWAY_*; see gateway/config.py). */}}
{{- define "pixelmesh.gateway.env" -}}
- name: PIXELMESH_GATEWAY_HOST
  value: "0.0.0.0"
- name: PIXELMESH_GATEWAY_PORT
  value: {{ .Values.gateway.port | quote }}
- name: PIXELMESH_GATEWAY_REGIONS
  value: {{ include "pixelmesh.gateway.regions" . | quote }}
- name: PIXELMESH_GATEWAY_HOME_REGION
  value: {{ .Values.region | quote }}
- name: PIXELMESH_GATEWAY_PIPELINES
  value: /etc/pixelmesh/pipelines
- name: PIXELMESH_GATEWAY_MAX_UPLOAD_BYTES
  value: {{ .Values.gateway.maxUploadBytes | int64 | quote }}
- name: PIXELMESH_GATEWAY_BACKLOG_LIMIT
  value: {{ .Values.gateway.backlogLimit | int64 | quote }}
- name: PIXELMESH_GATEWAY_LOG_LEVEL
  value: {{ .Values.gateway.logLevel | quote }}
- name: PIXELMESH_GATEWAY_LOG_FORMAT
  value: json
{{- with .Values.gateway.apiKeys.existingSecret }}
- name: PIXELMESH_GATEWAY_API_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.gateway.apiKeys.key }}
{{- end }}
{{- with .Values.gateway.signingKeys.existingSecret }}
- name: PIXELMESH_GATEWAY_SIGNING_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.gateway.signingKeys.key }}
{{- end }}
{{- end -}}

{{/* The operator's command line: `pixelmesh operator` with what it watches and serves. */}}
{{- define "pixelmesh.operator.args" -}}
- operator
{{- if .Values.operator.clusterWide }}
- --all-namespaces
{{- else }}
{{- range include "pixelmesh.watchNamespaces" . | fromJsonArray }}
- --namespace={{ . }}
{{- end }}
{{- end }}
- --metrics-port={{ .Values.operator.metricsPort }}
- --health-port={{ .Values.operator.healthPort }}
{{- with .Values.operator.extraArgs }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The operator's settings (PIXELMESH_OPERATOR_*; see operator/settings.py). */}}
{{- define "pixelmesh.operator.env" -}}
- name: PIXELMESH_OPERATOR_REGION
  value: {{ .Values.region | quote }}
- name: PIXELMESH_OPERATOR_NATS_URLS
  value: {{ join "," .Values.nats.urls | quote }}
- name: PIXELMESH_OPERATOR_WORKER_IMAGE
  value: {{ include "pixelmesh.image" . | quote }}
- name: PIXELMESH_OPERATOR_WORKER_IMAGE_PULL_POLICY
  value: {{ .Values.image.pullPolicy | quote }}
- name: PIXELMESH_OPERATOR_RESYNC_SECONDS
  value: {{ .Values.operator.resyncSeconds | quote }}
- name: PIXELMESH_OPERATOR_GEO_CLUSTER
  value: {{ .Values.operator.geo.cluster | quote }}
- name: PIXELMESH_OPERATOR_GEO_REPLICAS
  value: {{ .Values.operator.geo.replicas | quote }}
- name: PIXELMESH_OPERATOR_LOG_FORMAT
  value: json
{{- end -}}

{{/* Labels the operator puts on every worker pod (operator/names.py: worker_labels). */}}
{{- define "pixelmesh.workerSelectorLabels" -}}
app.kubernetes.io/name: pixelmesh-worker
app.kubernetes.io/component: worker
app.kubernetes.io/managed-by: pixelmesh-operator
{{- end -}}
