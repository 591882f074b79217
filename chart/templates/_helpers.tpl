{{- define "replicator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "replicator.fullname" -}}
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

{{- define "replicator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "replicator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "replicator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "replicator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "replicator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "replicator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- /* The namespace of every namespaced object of the chart. */ -}}
{{- define "replicator.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride -}}
{{- end -}}

{{- /* The leader Lease's name and namespace: the Deployment's
--leader-elect-lease-name and --leader-elect-namespace, and where the
Role granting them is. deployment.yaml spells the same out with the
values, so that docs/chart-values.md can name the flags. */ -}}
{{- define "replicator.leaseName" -}}
{{- .Values.leaderElection.leaseName | default (include "replicator.fullname" .) -}}
{{- end -}}

{{- define "replicator.leaseNamespace" -}}
{{- .Values.leaderElection.namespace | default (include "replicator.namespace" .) -}}
{{- end -}}

{{- /* The container image: repository:tag, repository@digest, or
repository:tag@digest. The tag defaults to the appVersion unless a digest
is given. */ -}}
{{- define "replicator.image" -}}
{{- $i := .Values.image -}}
{{- if and $i.digest $i.tag -}}
{{- printf "%s:%s@%s" $i.repository $i.tag $i.digest -}}
{{- else if $i.digest -}}
{{- printf "%s@%s" $i.repository $i.digest -}}
{{- else -}}
{{- printf "%s:%s" $i.repository ($i.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}
