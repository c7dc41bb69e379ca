{{/* Full name of a resource of this release. */}}
{{- define "pipeshield.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every resource. */}}
{{- define "pipeshield.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Namespace of a stage's ServiceAccount: (dict "root" $ "spec" $spec). */}}
{{- define "pipeshield.stageNamespace" -}}
{{- .spec.serviceAccount.namespace | default .root.Release.Namespace -}}
{{- end -}}

{{/* Pod security context shared by every pod. */}}
{{- define "pipeshield.podSecurityContext" -}}
{{ toYaml .Values.podSecurityContext }}
{{- end -}}

{{- define "pipeshield.containerSecurityContext" -}}
{{ toYaml .Values.containerSecurityContext }}
{{- end -}}
