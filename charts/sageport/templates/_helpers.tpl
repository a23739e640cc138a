{{/* Names, labels, images and the shared security settings. */}}

{{- define "sageport.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sageport.fullname" -}}
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

{{- define "sageport.operator.fullname" -}}
{{- printf "%s-operator" (include "sageport.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sageport.gateway.fullname" -}}
{{- printf "%s-gateway" (include "sageport.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sageport.operator.serviceAccountName" -}}
{{- default (include "sageport.operator.fullname" .) .Values.operator.serviceAccount.name -}}
{{- end -}}

{{- define "sageport.gateway.serviceAccountName" -}}
{{- default (include "sageport.gateway.fullname" .) .Values.gateway.serviceAccount.name -}}
{{- end -}}

{{/* Labels of every object; "component" is added per object. */}}
{{- define "sageport.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "sageport.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sageport
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of a component: pass (list $ "operator"). */}}
{{- define "sageport.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "sageport.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "sageport.componentLabels" -}}
{{- $root := index . 0 -}}
{{ include "sageport.labels" $root }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "sageport.operator.image" -}}
{{- printf "%s:%s" .Values.operator.image.repository (default .Chart.AppVersion .Values.operator.image.tag) -}}
{{- end -}}

{{- define "sageport.runtime.image" -}}
{{- printf "%s:%s" .Values.runtime.image.repository (default .Chart.AppVersion .Values.runtime.image.tag) -}}
{{- end -}}

{{/*
Restricted Pod Security Standard, for every pod of the chart: non-root (65532, the usual
"nonroot" id), RuntimeDefault seccomp. Containers add the container half below.
*/}}
{{- define "sageport.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "sageport.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The namespaces the operator and the gateway watch, as a JSON list ("[]": all). */}}
{{- define "sageport.watchNamespaces" -}}
{{- .Values.watchNamespaces | uniq | sortAlpha | toJson -}}
{{- end -}}
