{{/* Name of a component: <release>-<component>. */}}
{{- define "mm.name" -}}
{{- printf "%s-%s" .root.Release.Name .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mm.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
app.kubernetes.io/name: magnetm3u8
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: magnetm3u8
{{ include "mm.selector" . }}
{{- end -}}

{{- define "mm.selector" -}}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- if .worker }}
magnetm3u8.io/worker: {{ .worker }}
{{- end }}
{{- end -}}

{{/* Image of a service: the override, else <registry>/magnetm3u8-<service>:<tag>. */}}
{{- define "mm.image" -}}
{{- if .override -}}
{{ .override }}
{{- else -}}
{{ printf "%s/magnetm3u8-%s:%s" .root.Values.image.registry .service (default .root.Chart.AppVersion .root.Values.image.tag) }}
{{- end -}}
{{- end -}}

{{- define "mm.natsUrl" -}}
{{- if .Values.nats.external.url -}}
{{ .Values.nats.external.url }}
{{- else -}}
{{ printf "nats://%s-nats:4222" .Release.Name }}
{{- end -}}
{{- end -}}

{{/* Environment every service gets: NATS and the config file. */}}
{{- define "mm.commonEnv" -}}
{{- if .Values.nats.external.existingSecret }}
- name: MAGNET__NATS__URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.nats.external.existingSecret }}
      key: url
{{- else }}
- name: MAGNET__NATS__URL
  value: {{ include "mm.natsUrl" . | quote }}
{{- end }}
- name: MAGNET_CONFIG
  value: /etc/magnetm3u8/config.json
- name: RUST_LOG
  value: info,librqbit=warn,sqlx=warn
{{- if .Values.tracing.enabled }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ required "tracing.otlpEndpoint is required when tracing.enabled" .Values.tracing.otlpEndpoint | quote }}
{{- end }}
{{- end -}}

{{/* Scrape annotations, when no ServiceMonitor does the job. */}}
{{- define "mm.scrape" -}}
{{- if not .root.Values.serviceMonitor.enabled }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end -}}

{{- define "mm.podSecurity" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "mm.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/* Liveness and readiness on the admin port. */}}
{{- define "mm.probes" -}}
livenessProbe:
  httpGet: {path: /healthz, port: admin}
  periodSeconds: 10
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /readyz, port: admin}
  periodSeconds: 5
  failureThreshold: 2
{{- end -}}

{{- define "mm.configVolume" -}}
- name: config
  configMap:
    name: {{ include "mm.name" (dict "root" . "component" "config") }}
- name: tmp
  emptyDir: {}
{{- end -}}

{{- define "mm.configMount" -}}
- name: config
  mountPath: /etc/magnetm3u8
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/* The claim of a worker node's volume (the downloader StatefulSet's first pod's). */}}
{{- define "mm.claim" -}}
{{- printf "data-%s-0" (include "mm.name" (dict "root" .root "component" (printf "%s-downloader" .worker))) -}}
{{- end -}}

{{/* Pods of a worker node on the Kubernetes node of its downloader, when the volume can be
mounted on one node only. */}}
{{- define "mm.workerAffinity" -}}
{{- if eq .w.storage.accessMode "ReadWriteOnce" }}
affinity:
  podAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      - topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "mm.selector" (dict "root" .root "component" "downloader" "worker" .w.id) | nindent 12 }}
{{- end }}
{{- end -}}

{{/* Environment of a worker node's pods. */}}
{{- define "mm.workerEnv" -}}
- name: MAGNET__NODE__ID
  value: {{ .w.id | quote }}
- name: MAGNET__NODE__NAME
  value: {{ default .w.id .w.name | quote }}
- name: MAGNET__NODE__ADDRESS
  valueFrom:
    fieldRef: {fieldPath: status.podIP}
- name: MAGNET__STORAGE__DATA_DIR
  value: /data
{{- end -}}
