{{/*
The permissions of the operator and the gateway, as rule lists. rbac.yaml puts them in one
ClusterRole per component (watchNamespaces empty) or splits them: the cluster-scoped rules in
a ClusterRole, the namespaced ones in a Role in each watched namespace.
*/}}

{{/* Operator, in the namespaces it watches: read the sageport.io kinds it reconciles, write
their status, own the children (server-side apply = patch; create/delete), list the pods of
an Endpoint whose instances do not start (why unschedulable) and of a TransformJob (the
drivers' termination messages), keep a Serial pipeline's stage pods (create, delete; label and
annotate its anchor pods), post kopf's events. A TransformJob's Job is created once and then only
patched (suspended on a stop): no delete, garbage collection removes it with its TransformJob. */}}
{{- define "sageport.operator.namespacedRules" -}}
- apiGroups: ["sageport.io"]
  resources: ["models", "endpointconfigs", "endpoints", "transformjobs"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["sageport.io"]
  resources: ["models/status", "endpointconfigs/status", "endpoints/status", "transformjobs/status"]
  verbs: ["patch"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["keda.sh"]
  resources: ["scaledobjects", "triggerauthentications"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}

{{/* Operator, cluster-scoped: the InstanceType catalog (read, and written by the catalog
sync), kopf's discovery of custom resources, and namespaces: their Pod Security label decides
whether a Model may run as root (in namespaced mode kopf also lists the namespaces it serves).
No peering rules: the operator runs standalone (one replica, no kopf peering objects). */}}
{{- define "sageport.operator.clusterRules" -}}
- apiGroups: ["sageport.io"]
  resources: ["instancetypes"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "list", "watch"]
{{- end -}}

{{/* Gateway, in the namespaces it serves: Endpoints (status: variants, weights), their
EndpointSlices (ready pod addresses), and access-key Secrets. RBAC cannot filter by label:
the gateway itself lists Secrets with the selector sageport.io/access-key=true. With the
control-plane API on, it also watches Models, EndpointConfigs and Endpoints (its cache) and may
impersonate ServiceAccounts: every control-plane write is made as the ServiceAccount the
caller's access key names, so that account's RBAC decides, never the gateway's. The gateway
itself writes nothing. */}}
{{- define "sageport.gateway.namespacedRules" -}}
{{- if .Values.gateway.controlApi.enabled }}
- apiGroups: ["sageport.io"]
  resources: ["models", "endpointconfigs", "endpoints", "transformjobs"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["impersonate"]
{{- else }}
- apiGroups: ["sageport.io"]
  resources: ["endpoints"]
  verbs: ["get", "list", "watch"]
{{- end }}
- apiGroups: ["discovery.k8s.io"]
  resources: ["endpointslices"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["list", "watch"]
{{- end -}}

{{/* Gateway, cluster-scoped: bearer-token checks, and the control-plane API's read checks (may
the key's ServiceAccount get/list what the cache holds?), only with auth on. */}}
{{- define "sageport.gateway.clusterRules" -}}
{{- if .Values.gateway.auth.enabled -}}
- apiGroups: ["authentication.k8s.io"]
  resources: ["tokenreviews"]
  verbs: ["create"]
- apiGroups: ["authorization.k8s.io"]
  resources: ["subjectaccessreviews"]
  verbs: ["create"]
{{- end -}}
{{- end -}}
