{{/*
Names, labels, images, probes, security context and the settings every START process
reads. Each component's templates call these, so a policy (non-root, read-only root,
gRPC probes) is written once and holds for every pod.
*/}}

{{/* Chart name, overridable. */}}
{{- define "start.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Prefix of every object's name: the release name, plus the chart name when it differs. */}}
{{- define "start.fullname" -}}
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

{{/* Name of one component's objects: (dict "root" $ "component" "sandbox"). */}}
{{- define "start.componentName" -}}
{{- printf "%s-%s" (include "start.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that select one component's pods; stable across upgrades. */}}
{{- define "start.selectorLabels" -}}
app.kubernetes.io/name: {{ include "start.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Standard app.kubernetes.io labels of every object. */}}
{{- define "start.labels" -}}
{{ include "start.selectorLabels" . }}
app.kubernetes.io/part-of: start
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Image reference: (dict "root" $ "image" .Values.hints.image). */}}
{{- define "start.image" -}}
{{- $tag := .image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- if .root.Values.image.registry -}}
{{- printf "%s/%s:%s" (trimSuffix "/" .root.Values.image.registry) .image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* Pod-level security: non-root, fixed ids matching the images' user, seccomp on. */}}
{{- define "start.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container-level security: nothing to escalate to, nothing to write outside volumes. */}}
{{- define "start.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
The one exception to non-root: the sandbox container runs with START_SANDBOX_ISOLATION=pod
as root *inside its gVisor sandbox* (gVisor's user-space kernel, not the node's), so that
it can run each execution under its own unprivileged uid in its own empty network
namespace and its own IPC namespace. It keeps a read-only root, seccomp, and only the
capabilities that needs (SYS_ADMIN for the two namespaces); what each is for, and why it cannot run without them, is the threat model in
docs/sandbox.md ("Threat model in a pod"). Kubernetes rejects allowPrivilegeEscalation: false
together with SYS_ADMIN, hence true.
*/}}
{{- define "start.sandboxSecurityContext" -}}
runAsUser: 0
runAsGroup: 0
runAsNonRoot: false
allowPrivilegeEscalation: true
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
  add: [SETUID, SETGID, KILL, CHOWN, DAC_OVERRIDE, FOWNER, SYS_ADMIN]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Pod settings every START pod shares (no API access: nothing here talks to Kubernetes). */}}
{{- define "start.podCommon" -}}
automountServiceAccountToken: false
enableServiceLinks: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
securityContext:
  {{- include "start.podSecurityContext" . | nindent 2 }}
{{- end -}}

{{/*
gRPC health probes (Kubernetes' built-in grpc probe on the standard health service).
The startup probe covers loading; liveness only starts after it, so a slow model load
never gets the pod killed. kubelet's grpc probe cannot do TLS, so with auth.enabled the
probes ask the plaintext port that serves health alone (auth.healthPort; start.probePort).
(dict "root" $ "port" 50051 "startup" .Values.generation.startupProbe)
*/}}
{{- define "start.grpcProbes" -}}
{{- $startup := .startup | default (dict "periodSeconds" 5 "failureThreshold" 24) -}}
{{- $port := include "start.probePort" . -}}
startupProbe:
  grpc:
    port: {{ $port }}
  periodSeconds: {{ $startup.periodSeconds }}
  failureThreshold: {{ $startup.failureThreshold }}
readinessProbe:
  grpc:
    port: {{ $port }}
  periodSeconds: 5
  failureThreshold: 2
livenessProbe:
  grpc:
    port: {{ $port }}
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 6
{{- end -}}

{{/* The port kubelet probes: the plaintext health port with auth on, else the gRPC port. (dict "root" $ "port" 50051) */}}
{{- define "start.probePort" -}}
{{- if include "start.authEnabled" .root -}}{{ .root.Values.auth.healthPort }}{{- else -}}{{ .port }}{{- end -}}
{{- end -}}

{{/* Container ports of a gRPC service (and its plaintext health port with auth on). */}}
{{- define "start.grpcPorts" -}}
- name: grpc
  containerPort: {{ .port }}
  protocol: TCP
- name: metrics
  containerPort: {{ .root.Values.metricsPort }}
  protocol: TCP
{{- if include "start.authEnabled" .root }}
- name: health
  containerPort: {{ .root.Values.auth.healthPort }}
  protocol: TCP
{{- end }}
{{- end -}}

{{/*
The runtime's own settings for service NAME (START_<NAME>_*), as every server reads them:
bind all interfaces, fixed port, metrics, json logs, drain time; with auth on, the plaintext
health port for the probes and the pod's certificate and token (start.authEnv).
(dict "root" $ "name" "hints" "port" 50052 "grace" 10)
*/}}
{{- define "start.serverEnv" -}}
{{- $prefix := printf "START_%s_" (upper .name) -}}
- name: {{ $prefix }}HOST
  value: "0.0.0.0"
- name: {{ $prefix }}PORT
  value: {{ .port | quote }}
- name: {{ $prefix }}METRICS_PORT
  value: {{ .root.Values.metricsPort | quote }}
- name: {{ $prefix }}LOG_FORMAT
  value: {{ .root.Values.logFormat | quote }}
- name: {{ $prefix }}LOG_LEVEL
  value: {{ .root.Values.logLevel | quote }}
- name: {{ $prefix }}GRACE_S
  value: {{ .grace | quote }}
{{- if include "start.authEnabled" .root }}
- name: {{ $prefix }}HEALTH_PORT
  value: {{ .root.Values.auth.healthPort | quote }}
{{- end }}
{{- include "start.authEnv" .root }}
{{- end -}}

{{/* Address of a service inside the cluster: (dict "root" $ "component" "hints" "port" 50052). */}}
{{- define "start.addr" -}}
{{- printf "%s:%v" (include "start.componentName" .) .port -}}
{{- end -}}

{{/*
Redis authentication. The in-chart Redis requires a password unless redis.auth.enabled is
false: from redis.auth.existingSecret, or from the Secret `<release>-redis` the chart makes
(secret-redis.yaml). "true" or "" for whether it does.
*/}}
{{- define "start.redisAuth" -}}
{{- if and .Values.redis.enabled .Values.redis.auth.enabled -}}true{{- end -}}
{{- end -}}

{{/* The Secret holding the in-chart Redis' password: redis.auth.existingSecret, or the chart's own. */}}
{{- define "start.redisSecretName" -}}
{{- .Values.redis.auth.existingSecret | default (include "start.componentName" (dict "root" . "component" "redis")) -}}
{{- end -}}

{{/*
An environment variable holding the in-chart Redis' password, read from its Secret:
(dict "root" $ "name" "REDIS_PASSWORD"). Never a value in the pod spec.
*/}}
{{- define "start.redisPasswordEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "start.redisSecretName" .root }}
      key: {{ .root.Values.redis.auth.passwordKey }}
{{- end -}}

{{/*
START_REDIS_URL, from the in-chart Redis (with its password from its Secret, unless
redis.auth.enabled is false) or an external URL (inline, or from a Secret when it carries
a password). REDIS_PASSWORD comes first: $(VAR) only expands to variables defined above it.
*/}}
{{- define "start.redisEnv" -}}
{{- $r := .Values.redis -}}
{{- if $r.enabled }}
{{- $host := printf "%s:6379" (include "start.componentName" (dict "root" . "component" "redis")) -}}
{{- if include "start.redisAuth" . }}
{{ include "start.redisPasswordEnv" (dict "root" . "name" "REDIS_PASSWORD") }}
- name: START_REDIS_URL
  value: {{ printf "redis://:$(REDIS_PASSWORD)@%s/0" $host | quote }}
{{- else }}
- name: START_REDIS_URL
  value: {{ printf "redis://%s/0" $host | quote }}
{{- end }}
{{- else if $r.external.existingSecret }}
- name: START_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ $r.external.existingSecret }}
      key: {{ $r.external.urlKey }}
{{- else }}
- name: START_REDIS_URL
  value: {{ required "redis.enabled is false: set redis.external.url or redis.external.existingSecret" $r.external.url | quote }}
{{- end }}
{{- end -}}

{{/* Where the services are: what the orchestrator, its workers and scoring read. */}}
{{- define "start.peerEnv" -}}
{{- $v := .Values -}}
- name: START_GENERATION_ADDR
  value: {{ include "start.addr" (dict "root" . "component" "generation" "port" $v.generation.port) | quote }}
{{- include "start.generationRoutingEnv" . }}
- name: START_HINTS_ADDR
  value: {{ include "start.addr" (dict "root" . "component" "hints" "port" $v.hints.port) | quote }}
- name: START_SANDBOX_ADDR
  value: {{ include "start.addr" (dict "root" . "component" "sandbox" "port" $v.sandbox.port) | quote }}
- name: START_SCORING_ADDR
  value: {{ include "start.addr" (dict "root" . "component" "scoring" "port" $v.scoring.port) | quote }}
- name: START_ORCHESTRATOR_ADDR
  value: {{ include "start.addr" (dict "root" . "component" "orchestrator" "port" $v.orchestrator.port) | quote }}
{{- include "start.redisEnv" . }}
{{- end -}}

{{/*
Episode-affine routing of generation calls (services/orchestrator/routing.py): every ready
replica from the headless Service's DNS name, the policy and its limits.
*/}}
{{- define "start.generationRoutingEnv" -}}
{{- $v := .Values -}}
{{- $r := $v.generation.routing }}
- name: START_GENERATION_DISCOVERY
  value: {{ include "start.addr" (dict "root" . "component" "generation-headless" "port" $v.generation.port) | quote }}
- name: START_GENERATION_ROUTING
  value: {{ $r.policy | quote }}
- name: START_GENERATION_MAX_INFLIGHT_PER_REPLICA
  value: {{ $r.maxInflightPerReplica | default $v.generation.engine.maxNumSeqs | quote }}
- name: START_GENERATION_DISCOVERY_INTERVAL_S
  value: {{ $r.discoveryIntervalSeconds | quote }}
- name: START_GENERATION_COOLDOWN_S
  value: {{ $r.cooldownSeconds | quote }}
{{- end -}}

{{/* Scratch space: the root filesystem is read-only, so /tmp (and HOME caches) live here. */}}
{{- define "start.tmpVolumeMount" -}}
- name: tmp
  mountPath: /tmp
{{- end -}}

{{- define "start.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ . | default "256Mi" }}
{{- end -}}

{{/* Termination grace: the server's own drain plus a margin, so SIGKILL never cuts a drain. */}}
{{- define "start.terminationGrace" -}}
{{- add (int .) 15 -}}
{{- end -}}

{{/* A PodDisruptionBudget for one component: (dict "root" $ "component" "hints"). */}}
{{- define "start.pdb" -}}
{{- if .root.Values.podDisruptionBudget.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "start.componentName" . }}
  labels:
    {{- include "start.labels" . | nindent 4 }}
spec:
  maxUnavailable: {{ .root.Values.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "start.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end -}}

{{/* A ClusterIP Service for one gRPC component: (dict "root" $ "component" "hints" "port" 50052). */}}
{{- define "start.grpcService" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "start.componentName" . }}
  labels:
    {{- include "start.labels" . | nindent 4 }}
spec:
  type: {{ .type | default "ClusterIP" }}
  selector:
    {{- include "start.selectorLabels" . | nindent 4 }}
  ports:
    - name: grpc
      port: {{ .port }}
      targetPort: grpc
      protocol: TCP
      appProtocol: grpc
    - name: metrics
      port: {{ .root.Values.metricsPort }}
      targetPort: metrics
      protocol: TCP
{{- end -}}

{{/*
Celery workers: a Deployment per step queue (workers.queues: generate, tool, score), so
each kind of work scales on its own. All of them carry component "workers" (one PDB and
the sandbox's NetworkPolicy select them together); the queue label tells them apart and
is part of each Deployment's selector, so no two Deployments claim the same pods.
*/}}
{{- define "start.workerQueueLabel" -}}
start.dev/queue: {{ .queue }}
{{- end -}}

{{/* Labels that select one queue's worker pods: (dict "root" $ "queue" "generate"). */}}
{{- define "start.workerSelectorLabels" -}}
{{ include "start.selectorLabels" (dict "root" .root "component" "workers") }}
{{ include "start.workerQueueLabel" . }}
{{- end -}}

{{/* Standard labels of one queue's worker objects: (dict "root" $ "queue" "generate"). */}}
{{- define "start.workerLabels" -}}
{{ include "start.labels" (dict "root" .root "component" "workers") }}
{{ include "start.workerQueueLabel" . }}
{{- end -}}

{{/*
One queue's worker settings as JSON (read with fromJson): the shared workers.* defaults
with the queue's own non-null values on top. (dict "root" $ "queue" "generate")
Keys: name (object name), celeryQueue, replicas, concurrency, resources, autoscaling
(enabled, minReplicas, maxReplicas, targetCPUUtilizationPercentage), listLength.
*/}}
{{- define "start.workerQueue" -}}
{{- $w := .root.Values.workers -}}
{{- $q := get $w.queues .queue | default dict -}}
{{- $where := printf "workers.queues.%s" .queue -}}
{{- $autoscaling := deepCopy $w.autoscaling -}}
{{- range $key, $value := ($q.autoscaling | default dict) }}
{{- if not (kindIs "invalid" $value) }}{{ $_ := set $autoscaling $key $value }}{{ end }}
{{- end }}
{{- if gt (int $autoscaling.minReplicas) (int $autoscaling.maxReplicas) }}
{{- fail (printf "%s: autoscaling.minReplicas %v is above maxReplicas %v (the queue's own values over workers.autoscaling)" $where $autoscaling.minReplicas $autoscaling.maxReplicas) }}
{{- end }}
{{- $keda := $q.keda | default dict -}}
{{- toJson (dict
  "name" (include "start.componentName" (dict "root" .root "component" (printf "workers-%s" .queue)))
  "celeryQueue" (printf "start.%s" .queue)
  "replicas" ($q.replicas | default $w.replicas)
  "concurrency" ($q.concurrency | default $w.concurrency)
  "resources" ($q.resources | default $w.resources)
  "autoscaling" $autoscaling
  "listLength" ($keda.listLength | default $w.keda.listLength)
) -}}
{{- end -}}

{{/*
Where job results go (START_ORCHESTRATOR_RESULTS_URL): results.url (an object store), or
a directory in the orchestrator pod, on the results PVC when results.persistence.enabled.
*/}}
{{- define "start.resultsDir" -}}
/var/lib/start/results
{{- end -}}

{{/* The results root: results.url, or the results directory on a volume (start.resultsDir). */}}
{{- define "start.resultsRoot" -}}
{{- .Values.results.url | default (include "start.resultsDir" .) -}}
{{- end -}}

{{/*
A location beside the job results: a URL (s3://, gs://) or an absolute path as given,
anything else under the results root. (dict "root" $ "path" "datasets/hint-rft")
*/}}
{{- define "start.resultsLocation" -}}
{{- if or (hasPrefix "/" .path) (contains "://" .path) -}}
{{- .path -}}
{{- else -}}
{{- printf "%s/%s" (include "start.resultsRoot" .root | trimSuffix "/") .path -}}
{{- end -}}
{{- end -}}

{{/* Whether the chart makes the results PVC ("true" or ""). */}}
{{- define "start.resultsClaim" -}}
{{- $r := .Values.results -}}
{{- if and (not $r.url) $r.persistence.enabled -}}true{{- end -}}
{{- end -}}

{{/* Whether the results PVC can be mounted on one node only ("true" or ""). */}}
{{- define "start.resultsClaimSingleNode" -}}
{{- $r := .Values.results -}}
{{- if and (include "start.resultsClaim" .) (not (has "ReadWriteMany" $r.persistence.accessModes)) -}}true{{- end -}}
{{- end -}}

{{/* Where a secret mounted for object-store credentials lives (GOOGLE_APPLICATION_CREDENTIALS points into it). */}}
{{- define "start.resultsCredentialsDir" -}}
/etc/start/results-credentials
{{- end -}}


{{/*
Whether pods other than the orchestrator can reach the job results ("true" or ""): an
object store, or the results PVC unless it is ReadWriteOncePod (one pod only). Results in
an emptyDir (results.persistence.enabled false) live and die with the orchestrator pod.
*/}}
{{- define "start.resultsShared" -}}
{{- $r := .Values.results -}}
{{- if $r.url -}}true
{{- else if include "start.resultsClaim" . -}}
{{- if or (has "ReadWriteOnce" $r.persistence.accessModes) (has "ReadWriteMany" $r.persistence.accessModes) -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Object-store credentials of a container that reads or writes the job results (the
orchestrator, the recipe Jobs): results.existingSecret's keys as its environment.
*/}}
{{- define "start.resultsEnvFrom" -}}
{{- with .Values.results.existingSecret }}
# Object-store credentials, as fsspec (s3fs, gcsfs) reads them from the environment.
envFrom:
  - secretRef:
      name: {{ . }}
{{- end }}
{{- end -}}

{{/*
Where such a container finds the job results: the results volume at start.resultsDir
unless they are in an object store, and results.existingSecret as files
(GOOGLE_APPLICATION_CREDENTIALS may point at a key file in it).
*/}}
{{- define "start.resultsVolumeMounts" -}}
{{- $r := .Values.results -}}
{{- if not $r.url }}
- name: results
  mountPath: {{ include "start.resultsDir" . }}
{{- end }}
{{- if $r.existingSecret }}
- name: results-credentials
  mountPath: {{ include "start.resultsCredentialsDir" . }}
  readOnly: true
{{- end }}
{{- end -}}

{{/* The volumes behind start.resultsVolumeMounts. */}}
{{- define "start.resultsVolumes" -}}
{{- $r := .Values.results -}}
{{- if include "start.resultsClaim" . }}
- name: results
  persistentVolumeClaim:
    claimName: {{ include "start.componentName" (dict "root" . "component" "results") }}
{{- else if not $r.url }}
# No PVC: results last as long as the pod (for trying the chart out).
- name: results
  emptyDir: {}
{{- end }}
{{- if $r.existingSecret }}
- name: results-credentials
  secret:
    secretName: {{ $r.existingSecret }}
{{- end }}
{{- end -}}

{{/*
Name of a CronJob, failing when too long: the CronJob controller appends an 11-character
suffix to name each scheduled Job, so Kubernetes caps CronJob names at 52 characters.
(dict "root" $ "component" "train-sft")
*/}}
{{- define "start.cronJobName" -}}
{{- $name := include "start.componentName" . -}}
{{- if gt (len $name) 52 }}
{{- fail (printf "CronJob name %s is longer than Kubernetes' 52 characters: use a shorter release name or fullnameOverride" $name) }}
{{- end }}
{{- $name -}}
{{- end -}}


{{/*
Network policies (networkpolicy-*.yaml; docs/deployment.md, "Network and Redis security").
Each component gets one NetworkPolicy listing both Ingress and Egress, so whatever its
rules do not admit is dropped: only the calls the architecture draws get through.
*/}}

{{/* A peer selecting one component's pods of this release: (dict "root" $ "component" "workers"). */}}
{{- define "start.podPeer" -}}
{{- toJson (dict "podSelector" (dict "matchLabels" (include "start.selectorLabels" . | fromYaml))) -}}
{{- end -}}

{{/*
One component's NetworkPolicy, from its edges. An empty list of peers in networkPolicy.*
closes what it would open (Kubernetes reads a rule without peers as "from anywhere").
(dict "root" $ "component" "scoring"
  "callers" (list "workers" ...)  components of this release admitted on "port"
  "from" (list ...)               more peers admitted on "port" (networkPolicy.frontDoor.from)
  "port" "grpc"                   the port those are admitted on (default grpc)
  "metrics" true                  admit networkPolicy.metrics.from on the metrics port
  "ingress" (list ...)            more ingress rules, as they are
  "calls" (list (dict "component" "sandbox" "port" 50053) ...)  egress to this release's pods
  "dns" true                      egress to networkPolicy.dns.to on UDP and TCP 53
  "egress" (list ...))            more egress rules, as they are
*/}}
{{- define "start.networkPolicy" -}}
{{- $root := .root -}}
{{- $np := $root.Values.networkPolicy -}}
{{- $c := dict "root" $root "component" .component -}}
{{- $ingress := list -}}
{{- $peers := list -}}
{{- range .callers | default list }}
{{- $peers = append $peers (include "start.podPeer" (dict "root" $root "component" .) | fromJson) -}}
{{- end }}
{{- $peers = concat $peers (.from | default list) -}}
{{- if $peers }}
{{- $ingress = append $ingress (dict "from" $peers "ports" (list (dict "port" (.port | default "grpc") "protocol" "TCP"))) -}}
{{- end }}
{{- if and .metrics $np.metrics.from }}
{{- $ingress = append $ingress (dict "from" $np.metrics.from "ports" (list (dict "port" "metrics" "protocol" "TCP"))) -}}
{{- end }}
{{- $ingress = concat $ingress (.ingress | default list) -}}
{{- $egress := list -}}
{{- range .calls | default list }}
{{- $to := list (include "start.podPeer" (dict "root" $root "component" .component) | fromJson) -}}
{{- $egress = append $egress (dict "to" $to "ports" (list (dict "port" (int .port) "protocol" "TCP"))) -}}
{{- end }}
{{- if and .dns $np.dns.to }}
{{- $egress = append $egress (dict "to" $np.dns.to "ports" (list (dict "port" 53 "protocol" "UDP") (dict "port" 53 "protocol" "TCP"))) -}}
{{- end }}
{{- $egress = concat $egress (.egress | default list) -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "start.componentName" $c }}
  labels:
    {{- include "start.labels" $c | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "start.selectorLabels" $c | nindent 6 }}
  policyTypes: [Ingress, Egress]
  ingress: {{- if $ingress }}{{ toYaml $ingress | nindent 4 }}{{ else }} []{{ end }}
  egress: {{- if $egress }}{{ toYaml $egress | nindent 4 }}{{ else }} []{{ end }}
{{- end -}}

{{/*
Egress rules to places outside the release, from a networkPolicy block with "to" (peers)
and "ports" (TCP): the object store (networkPolicy.objectStore), an external Redis
(networkPolicy.externalRedis). A list of one rule, or none when "to" is empty.
*/}}
{{- define "start.externalEgress" -}}
{{- $ports := list -}}
{{- range .ports }}{{ $ports = append $ports (dict "port" (int .) "protocol" "TCP") }}{{ end -}}
{{- toJson (ternary (list (dict "to" .to "ports" $ports)) list (not (empty .to))) -}}
{{- end -}}

{{/* The TCP port of this release's gRPC service COMPONENT: (dict "root" $ "component" "hints"). */}}
{{- define "start.grpcCall" -}}
{{- toJson (dict "component" .component "port" (get .root.Values .component).port) -}}
{{- end -}}

{{/*
Where the orchestrator (front door) and the workers send: every gRPC service, Redis (the
in-chart one, or networkPolicy.externalRedis), and DNS. As (dict "calls" ... "egress" ...) JSON.
*/}}
{{- define "start.episodeRunnerEdges" -}}
{{- $calls := list -}}
{{- range list "generation" "hints" "sandbox" "scoring" }}
{{- $calls = append $calls (include "start.grpcCall" (dict "root" $ "component" .) | fromJson) -}}
{{- end }}
{{- $egress := list -}}
{{- if .Values.redis.enabled }}
{{- $calls = append $calls (dict "component" "redis" "port" 6379) -}}
{{- else }}
{{- $egress = include "start.externalEgress" .Values.networkPolicy.externalRedis | fromJsonArray -}}
{{- end }}
{{- toJson (dict "calls" $calls "egress" $egress) -}}
{{- end -}}


{{/*
Authentication between START's processes (services/common/auth.py; docs/deployment.md,
"Authentication"). With auth.enabled every gRPC server requires mutual TLS and a bearer
token, and every client (services, workers, recipe runs, `helm test`) presents them: one
certificate per release, with both TLS usages, from auth.tls.existingSecret, cert-manager
(certificate-tls.yaml) or the chart (secret-tls.yaml), and one token (secret-auth-token.yaml),
both mounted read-only into each pod.
*/}}

{{/* Whether authentication is on ("true" or ""). */}}
{{- define "start.authEnabled" -}}
{{- if .Values.auth.enabled -}}true{{- end -}}
{{- end -}}

{{/* The Secret with tls.crt, tls.key and ca.crt: auth.tls.existingSecret, or the chart's (made by it or by cert-manager). */}}
{{- define "start.tlsSecretName" -}}
{{- .Values.auth.tls.existingSecret | default (include "start.componentName" (dict "root" . "component" "tls")) -}}
{{- end -}}

{{/* The Secret holding the bearer token: auth.token.existingSecret, or the chart's own. */}}
{{- define "start.tokenSecretName" -}}
{{- .Values.auth.token.existingSecret | default (include "start.componentName" (dict "root" . "component" "auth-token")) -}}
{{- end -}}

{{/*
The name every server's certificate carries and every client checks (START_TLS_SERVER_NAME):
clients also dial pod IPs (generation replicas found by DNS), which no certificate names.
*/}}
{{- define "start.tlsServerName" -}}
{{- .Values.auth.tls.serverName | default (include "start.fullname" .) -}}
{{- end -}}

{{/* The names the chart's certificate carries (generated or cert-manager's), as JSON: dns and ips. */}}
{{- define "start.tlsNames" -}}
{{- $dns := list (include "start.tlsServerName" .) "localhost" -}}
{{- range list "generation" "generation-headless" "hints" "sandbox" "scoring" "orchestrator" }}
{{- $name := include "start.componentName" (dict "root" $ "component" .) -}}
{{- $dns = concat $dns (list $name (printf "%s.%s" $name $.Release.Namespace) (printf "%s.%s.svc" $name $.Release.Namespace) (printf "%s.%s.svc.cluster.local" $name $.Release.Namespace)) -}}
{{- end }}
{{- toJson (dict "dns" (uniq $dns) "ips" (list "127.0.0.1")) -}}
{{- end -}}

{{- define "start.tlsDir" -}}/etc/start/tls{{- end -}}
{{- define "start.tokenDir" -}}/etc/start/auth{{- end -}}

{{/* The settings that make a process authenticate, as server and as client (none with auth off). */}}
{{- define "start.authEnv" -}}
{{- if include "start.authEnabled" . }}
- name: START_TLS_CERT_FILE
  value: {{ printf "%s/tls.crt" (include "start.tlsDir" .) | quote }}
- name: START_TLS_KEY_FILE
  value: {{ printf "%s/tls.key" (include "start.tlsDir" .) | quote }}
- name: START_TLS_CA_FILE
  value: {{ printf "%s/ca.crt" (include "start.tlsDir" .) | quote }}
- name: START_TLS_SERVER_NAME
  value: {{ include "start.tlsServerName" . | quote }}
- name: START_AUTH_TOKEN_FILE
  value: {{ printf "%s/%s" (include "start.tokenDir" .) .Values.auth.token.key | quote }}
{{- end }}
{{- end -}}

{{/* Mounts of the certificate and the token (none with auth off). */}}
{{- define "start.authVolumeMounts" -}}
{{- if include "start.authEnabled" . }}
- name: auth-tls
  mountPath: {{ include "start.tlsDir" . }}
  readOnly: true
- name: auth-token
  mountPath: {{ include "start.tokenDir" . }}
  readOnly: true
{{- end }}
{{- end -}}

{{/*
The volumes behind start.authVolumeMounts. Mode 0440: the files belong to root and the
pods' fsGroup, so the process reads them and the sandbox's runs (other uids, no groups)
do not.
*/}}
{{- define "start.authVolumes" -}}
{{- if include "start.authEnabled" . }}
- name: auth-tls
  secret:
    secretName: {{ include "start.tlsSecretName" . }}
    defaultMode: 0440
    items:
      - {key: tls.crt, path: tls.crt}
      - {key: tls.key, path: tls.key}
      - {key: ca.crt, path: ca.crt}
- name: auth-token
  secret:
    secretName: {{ include "start.tokenSecretName" . }}
    defaultMode: 0440
    items:
      - {key: {{ .Values.auth.token.key }}, path: {{ .Values.auth.token.key }}}
{{- end }}
{{- end -}}
