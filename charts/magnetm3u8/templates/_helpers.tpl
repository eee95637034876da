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

{{/* The bundled NATS's users: gateway, signaling, and each worker's downloader, transcoder
and streamer (`<service>-<worker id>`), as a list of {user, service, node}. */}}
{{- define "mm.natsUsers" -}}
{{- $users := list (dict "user" "gateway" "service" "gateway" "node" "") (dict "user" "signaling" "service" "signaling" "node" "") }}
{{- range $w := .Values.workers }}
{{- range $s := list "downloader" "transcoder" "streamer" }}
{{- $users = append $users (dict "user" (printf "%s-%s" $s $w.id) "service" $s "node" $w.id) }}
{{- end }}
{{- end }}
{{- toJson $users }}
{{- end -}}

{{/* Subjects as a nats.conf list body: quoted, comma-separated (toJson would escape '>'). */}}
{{- define "mm.natsList" -}}
{{- range $i, $s := . }}{{ if $i }}, {{ end }}{{ $s | quote }}{{ end }}
{{- end -}}

{{/* Key of a NATS user's password in the users Secret, and the variable nats.conf reads it
from (letters, digits and '_' only). */}}
{{- define "mm.natsKey" -}}
{{- printf "NATS_PW_%s" (. | replace "-" "_") -}}
{{- end -}}

{{/* Environment every service gets: NATS (as its own user with the bundled server), the
service credential and the config file. Call with (dict "root" $ "user" "<nats user>"). */}}
{{- define "mm.commonEnv" -}}
{{- $root := .root }}
{{- if $root.Values.nats.external.existingSecret }}
- name: MAGNET__NATS__URL
  valueFrom:
    secretKeyRef:
      name: {{ $root.Values.nats.external.existingSecret }}
      key: url
{{- else if $root.Values.nats.external.url }}
- name: MAGNET__NATS__URL
  value: {{ $root.Values.nats.external.url | quote }}
{{- else }}
- name: NATS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "mm.name" (dict "root" $root "component" "nats-users") }}
      key: {{ include "mm.natsKey" .user }}
- name: MAGNET__NATS__URL
  value: {{ printf "nats://%s:$(NATS_PASSWORD)@%s-nats:4222" .user $root.Release.Name | quote }}
{{- end }}
- name: MAGNET__INTERNAL__TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ default (include "mm.name" (dict "root" $root "component" "internal")) $root.Values.internal.existingSecret }}
      key: token
- name: MAGNET_CONFIG
  value: /etc/magnetm3u8/config.json
- name: RUST_LOG
  value: info,librqbit=warn,sqlx=warn
{{- if $root.Values.tracing.enabled }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ required "tracing.otlpEndpoint is required when tracing.enabled" $root.Values.tracing.otlpEndpoint | quote }}
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

{{- /* TURN: on when the chart runs coturn or names TURN urls. */}}
{{- define "mm.turnOn" -}}
{{- if or .Values.turn.coturn.enabled .Values.turn.urls }}true{{ end }}
{{- end }}

{{- /* The TURN urls handed out: the given ones, and the chart's coturn at its external address. */}}
{{- define "mm.turnUrls" -}}
{{- $urls := .Values.turn.urls }}
{{- if .Values.turn.coturn.enabled }}
{{- $urls = append $urls (printf "turn:%s:%d?transport=udp" (required "turn.coturn.externalIp: the address viewers reach coturn at" .Values.turn.coturn.externalIp) (int .Values.turn.coturn.port)) }}
{{- end }}
{{- toJson $urls }}
{{- end }}

{{- /* The Secret holding the TURN shared secret (key `secret`). */}}
{{- define "mm.turnSecret" -}}
{{- default (include "mm.name" (dict "root" . "component" "turn")) .Values.turn.existingSecret }}
{{- end }}

{{- /* The Secret holding Cloudflare's TURN API token (key `apiToken`). */}}
{{- define "mm.cloudflareSecret" -}}
{{- default (include "mm.name" (dict "root" . "component" "cloudflare-turn")) .Values.turn.cloudflare.existingSecret }}
{{- end }}

{{- /* The TURN secrets for the gateway and the streamers. */}}
{{- define "mm.turnEnv" -}}
{{- if include "mm.turnOn" . }}
- name: MAGNET__TURN__SECRET
  valueFrom:
    secretKeyRef: {name: {{ include "mm.turnSecret" . }}, key: secret}
{{- end }}
{{- if .Values.turn.cloudflare.keyId }}
- name: MAGNET__TURN__CLOUDFLARE__API_TOKEN
  valueFrom:
    secretKeyRef: {name: {{ include "mm.cloudflareSecret" . }}, key: apiToken}
{{- end }}
{{- end }}
