{{- define "wxteams.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "wxteams.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "wxteams.labels" -}}
app.kubernetes.io/name: {{ include "wxteams.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "wxteams.selector" -}}
app.kubernetes.io/name: {{ include "wxteams.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "wxteams.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The container's security context: non-root, read-only, nothing extra. */}}
{{- define "wxteams.securityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "wxteams.env" -}}
envFrom:
  - secretRef:
      name: {{ required "existingSecret: the Secret with the WXTEAMS_* variables" .Values.existingSecret }}
env:
  - name: WXTEAMS_LISTEN
    value: ":8080"
  - name: WXTEAMS_INTERNAL_LISTEN
    value: ":9090"
  # Prometheus scrapes 9090 on the pod's address; the network policy admits only the metrics namespace.
  - name: WXTEAMS_INSECURE_INTERNAL_LISTEN
    value: "1"
  - name: WXTEAMS_EXPORT_DIR
    value: /exports
  {{- range $k, $v := .Values.env }}
  - name: {{ $k }}
    value: {{ $v | quote }}
  {{- end }}
{{- end -}}
