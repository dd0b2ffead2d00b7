{{/*
The recipe runs in a cluster (dataset build, dataset export, evaluation): each a suspended
CronJob, never scheduled, a template for Jobs started by hand, as training is:
  kubectl create job eval-1 --from=cronjob/<release>-eval
One pod runs `startctl ARGS` in the orchestrator's image (the services image), beside the
job results: it mounts or is given credentials for them exactly as the orchestrator is.
A run's inputs are environment variables that ARGS name as $(VAR), after JOB_NAME (the
Job's name) and RESULTS (the results root), which their values may name too; so one run's
inputs change with `kubectl set env` on the Job before it is created, without editing ARGS
(docs/deployment.md, "Recipe runs in the cluster").
*/}}

{{/* Whether the recipe CronJobs are made ("true" or ""): switched on, and the job results reachable from their pods. */}}
{{- define "start.recipeJobsEnabled" -}}
{{- if and .Values.recipeJobs.enabled (include "start.resultsShared" .) -}}true{{- end -}}
{{- end -}}

{{/*
A run's input or output location as its pod's environment holds it: $(VAR) references as
they are, otherwise start.resultsLocation (relative locations under the results root).
(dict "root" $ "path" "datasets/$(JOB_NAME)")
*/}}
{{- define "start.recipeLocation" -}}
{{- if or (not .path) (hasPrefix "$(" .path) -}}
{{- .path -}}
{{- else -}}
{{- include "start.resultsLocation" . -}}
{{- end -}}
{{- end -}}

{{/*
One recipe CronJob. (dict "root" $ "component" "eval" "args" (list "eval" ...)
"inputs" (list (dict "name" "ARM" "value" "greedy") ...) "extraArgs" (list) "resources" (dict)
"jobUid" true), jobUid adding JOB_UID, the Job's uid, to the environment.
*/}}
{{- define "start.recipeCronJob" -}}
{{- $root := .root -}}
{{- $j := $root.Values.recipeJobs -}}
{{- $c := dict "root" $root "component" .component -}}
apiVersion: batch/v1
kind: CronJob
metadata:
  name: {{ include "start.cronJobName" $c }}
  labels:
    {{- include "start.labels" $c | nindent 4 }}
spec:
  suspend: true
  schedule: "0 0 1 1 *"
  concurrencyPolicy: Forbid
  jobTemplate:
    metadata:
      labels:
        {{- include "start.labels" $c | nindent 8 }}
    spec:
      backoffLimit: {{ $j.backoffLimit }}
      ttlSecondsAfterFinished: {{ $j.ttlSecondsAfterFinished }}
      podFailurePolicy:
        rules:
          # Exit 2 is bad input (an unknown job, a malformed problem set, a bad option):
          # retrying cannot help.
          - action: FailJob
            onExitCodes:
              containerName: {{ .component }}
              operator: In
              values: [2]
          # A drained or preempted node is not the run's fault: retry without counting it.
          - action: Ignore
            onPodConditions:
              - type: DisruptionTarget
                status: "True"
      template:
        metadata:
          labels:
            {{- include "start.labels" $c | nindent 12 }}
        spec:
          {{- include "start.podCommon" $root | nindent 10 }}
          restartPolicy: Never
          {{- if include "start.resultsClaimSingleNode" $root }}
          # The results PVC is ReadWriteOnce: attached to the orchestrator's node, where
          # every pod may mount it, and nowhere else.
          affinity:
            podAffinity:
              requiredDuringSchedulingIgnoredDuringExecution:
                - labelSelector:
                    matchLabels:
                      {{- include "start.selectorLabels" (dict "root" $root "component" "orchestrator") | nindent 22 }}
                  topologyKey: kubernetes.io/hostname
          {{- end }}
          containers:
            - name: {{ .component }}
              image: {{ include "start.image" (dict "root" $root "image" $root.Values.orchestrator.image) }}
              imagePullPolicy: {{ $root.Values.image.pullPolicy }}
              args: {{ concat .args (.extraArgs | default list) | toJson }}
              env:
                # The Job's name (build-1, eval-1...), set by the Job controller on every pod it makes.
                - name: JOB_NAME
                  valueFrom:
                    fieldRef:
                      fieldPath: metadata.labels['batch.kubernetes.io/job-name']
                {{- if .jobUid }}
                # The Job's uid: the same for every pod of this run, new for every run.
                - name: JOB_UID
                  valueFrom:
                    fieldRef:
                      fieldPath: metadata.labels['batch.kubernetes.io/controller-uid']
                {{- end }}
                - name: RESULTS
                  value: {{ include "start.resultsRoot" $root | quote }}
                {{- with include "start.authEnv" $root }}{{ . | trim | nindent 16 }}{{ end }}
                {{- range .inputs }}
                - name: {{ .name }}
                  value: {{ .value | toString | quote }}
                {{- end }}
                {{- with $j.extraEnv }}
                {{- toYaml . | nindent 16 }}
                {{- end }}
              {{- with include "start.resultsEnvFrom" $root }}{{ . | trim | nindent 14 }}{{ end }}
              resources:
                {{- toYaml .resources | nindent 16 }}
              securityContext:
                {{- include "start.containerSecurityContext" $root | nindent 16 }}
              volumeMounts:
                {{- include "start.tmpVolumeMount" $root | nindent 16 }}
                {{- with include "start.authVolumeMounts" $root }}{{ . | trim | nindent 16 }}{{ end }}
                {{- with include "start.resultsVolumeMounts" $root }}{{ . | trim | nindent 16 }}{{ end }}
          volumes:
            {{- include "start.tmpVolume" $j.tmpSize | nindent 12 }}
            {{- with include "start.authVolumes" $root }}{{ . | trim | nindent 12 }}{{ end }}
            {{- with include "start.resultsVolumes" $root }}{{ . | trim | nindent 12 }}{{ end }}
{{- end -}}
