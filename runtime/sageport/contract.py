"""The names every sageport component shares, defined once (stdlib only).

The operator writes these labels, ports and environment variables; the gateway, the model
server and every component that comes next read them. Two copies of one name are how two
components come to disagree, so a unit test (tests/unit/test_contract.py) fails when a second
literal of any value here appears in product code.
"""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum
from typing import Final

# --- the API --------------------------------------------------------------------------------
API_GROUP: Final = "sageport.io"
API_VERSION_NAME: Final = "v1alpha1"
API_VERSION: Final = f"{API_GROUP}/{API_VERSION_NAME}"


class Plural(StrEnum):
    """Resource names of the sageport.io kinds (the URL path segment)."""

    MODELS = "models"
    ENDPOINT_CONFIGS = "endpointconfigs"
    ENDPOINTS = "endpoints"
    TRANSFORM_JOBS = "transformjobs"
    INSTANCE_TYPES = "instancetypes"


# --- labels and annotations -----------------------------------------------------------------
# On every child of an Endpoint. The object's own name is its identity within a namespace;
# the SageMaker name (spec.endpointName) is what clients invoke and may name another object.
LABEL_ENDPOINT_OBJECT: Final = f"{API_GROUP}/endpoint-object"
LABEL_ENDPOINT: Final = f"{API_GROUP}/endpoint"
LABEL_VARIANT: Final = f"{API_GROUP}/variant"
# The EndpointConfig a child serves (see :func:`config_label`): during an update two fleets of
# one variant name run side by side, told apart by it.
LABEL_CONFIG: Final = f"{API_GROUP}/endpoint-config"
# "true" on a Secret holding a SigV4 access key for invocations.
LABEL_ACCESS_KEY: Final = f"{API_GROUP}/access-key"
# "true" on the InstanceTypes a catalog sync owns (and prunes).
LABEL_CATALOG: Final = f"{API_GROUP}/catalog"
# The pod template's hash, so a rollout happens exactly when the template changes.
ANNOTATION_TEMPLATE_HASH: Final = f"{API_GROUP}/template-hash"
MANAGED_BY: Final = "sageport-operator"
# Serial inference pipelines. An instance is an anchor pod (the variant's Deployment: the first
# stage and the router that runs the chain) and one pod per further stage, all on one node.
# LABEL_ROLE "instance" marks the anchors, so the Service, PDB and autoscaler count instances.
LABEL_ROLE: Final = f"{API_GROUP}/role"
ROLE_INSTANCE: Final = "instance"
# On an anchor (set by the operator once the pod exists) and on each of its stage pods: the
# anchor pod's name. The stage pods' required pod affinity names it, so the scheduler puts
# every stage of an instance on the anchor's node.
LABEL_INSTANCE: Final = f"{API_GROUP}/instance"
# On a stage pod: the containerHostname of the stage it runs.
LABEL_STAGE: Final = f"{API_GROUP}/stage"
# On an anchor: where its further stages answer, "host=ip:port,..." (written by the operator,
# read by the router through a downward API file).
ANNOTATION_STAGES: Final = f"{API_GROUP}/stages"
# The downward API file (in the router container) holding ANNOTATION_STAGES.
STAGES_FILE: Final = "/etc/sageport/pod/stages"

# --- serverless variants (KEDA) --------------------------------------------------------------
# On an Endpoint: seconds without calls before a serverless variant's idle pods go (KEDA's
# cooldownPeriod; the operator's default is SageMaker's idle period, 5 minutes).
ANNOTATION_SERVERLESS_IDLE_SECONDS: Final = f"{API_GROUP}/serverless-idle-seconds"
# Seconds an async variant with minInstanceCount 0 keeps its pods with an empty queue.
ANNOTATION_ASYNC_IDLE_SECONDS: Final = f"{API_GROUP}/async-idle-seconds"
# The gateway's gRPC port for KEDA's external-push scaler (externalscaler.ExternalScaler).
SCALER_PORT: Final = 9091
SCALER_PORT_NAME: Final = "scaler"
# The keys of the ScaledObject trigger's metadata (KEDA passes them to the scaler in every call):
# which fleet the ScaledObject scales, as the gateway's route table knows it.
SCALER_KEY_ENDPOINT: Final = "sageportEndpoint"  # the SageMaker name calls invoke
SCALER_KEY_CONFIG: Final = "sageportEndpointConfig"  # the config_label of the fleet's EndpointConfig
SCALER_KEY_VARIANT: Final = "sageportVariant"
# The metric the gateway reports to KEDA (GetMetrics): calls in flight and held for the variant.
SCALER_METRIC: Final = "sageport-concurrency"
# A target-tracked variant's trigger (KEDA's polled `external` scaler) asks for this metric instead:
# the variant's calls over the last minute, which the HPA divides by its instances and compares
# with the policy's targetValue (SageMakerVariantInvocationsPerInstance), given under TARGET.
SCALER_KEY_METRIC: Final = "sageportMetric"
SCALER_KEY_TARGET: Final = "sageportTargetValue"
SCALER_METRIC_INVOCATIONS: Final = "sageport-invocations-per-minute"

# --- the SageMaker control-plane API (awsJson 1.1) ---------------------------------------------
# The header naming the operation ("SageMaker.CreateEndpoint"): the gateway sends POST / requests
# carrying it to the control-plane API, which reads the operation from it.
AMZ_TARGET_HEADER: Final = "x-amz-target"

# --- the SageMaker container contract -------------------------------------------------------
CONTAINER_PORT: Final = 8080
CONTAINER_PORT_NAME: Final = "http"
PING_PATH: Final = "/ping"
INVOCATIONS_PATH: Final = "/invocations"
MODEL_DIR: Final = "/opt/ml/model"
CODE_DIR: Final = "/opt/ml/code"
MULTI_MODEL_ROOT: Final = "/opt/ml/models"
# Direct multi-container: the header naming the container (TargetContainerHostname); the
# gateway forwards it and the router sidecar in the pod routes by it.
TARGET_CONTAINER_HEADER: Final = "X-Amzn-SageMaker-Target-Container-Hostname"
# The ports of a multi-container pod's model containers (inclusive): each container gets its own
# slice, SAGEMAKER_BIND_TO_PORT its first port and SAGEMAKER_SAFE_PORT_RANGE the rest, since
# every container of a pod shares one network namespace. The router keeps CONTAINER_PORT.
MULTI_CONTAINER_PORTS: Final = (23000, 23999)
# On a router's non-2xx answer: the containerHostname of the container that gave it (or did not
# answer), so the gateway's ModelError names it (a Serial pipeline's failing stage).
FAILED_CONTAINER_HEADER: Final = "X-Sageport-Container"
# On a router's 503 when a stage of its instance is not there (no model was reached past it):
# the gateway sends the call to another instance, as when an instance refuses the connection.
RETRY_ELSEWHERE_HEADER: Final = "X-Sageport-Retry-Elsewhere"
# Multi-model endpoints: the header naming the model (boto3's TargetModel, a key relative to the
# Model's S3 prefix). The gateway sends such a call to POST /models/<multi_model_id>/invoke with the
# header kept; sageport's server, given the prefix in MODEL_PREFIX_ENV, loads it there on first use.
TARGET_MODEL_HEADER: Final = "X-Amzn-SageMaker-Target-Model"
MULTI_MODEL_PATH: Final = "/models"  # SageMaker's multi-model container API: /models/<name>/invoke
MODEL_PREFIX_ENV: Final = "SAGEPORT_MODEL_PREFIX"
# "Disabled" (SageMaker's ModelCacheSetting): each model is unloaded and deleted after its call.
MODEL_CACHE_ENV: Final = "SAGEPORT_MODEL_CACHE"
# The bytes a multi-model container's disk cache may hold (from volumeSizeInGB, with room left for
# the download in progress); idle artifacts are deleted, least recently used first, beyond it.
MODEL_DISK_BYTES_ENV: Final = "SAGEPORT_MODEL_DISK_BYTES"
# The error type (JSON "type") the server answers when TargetModel names no object under the prefix:
# the gateway answers it as SageMaker does, a ValidationError, not a ModelError.
TARGET_MODEL_MISSING_ERROR: Final = "TargetModelNotFoundError"
# Batch transform asks the container for its preferred batch parameters here, when offered.
EXECUTION_PARAMETERS_PATH: Final = "/execution-parameters"


class SageMakerEnv(StrEnum):
    """Environment variables of SageMaker's hosting contract that sageport sets or reads."""

    BIND_TO_PORT = "SAGEMAKER_BIND_TO_PORT"
    SAFE_PORT_RANGE = "SAGEMAKER_SAFE_PORT_RANGE"
    PROGRAM = "SAGEMAKER_PROGRAM"
    SUBMIT_DIRECTORY = "SAGEMAKER_SUBMIT_DIRECTORY"
    MULTI_MODEL = "SAGEMAKER_MULTI_MODEL"
    DEFAULT_INVOCATIONS_ACCEPT = "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"
    CONTAINER_LOG_LEVEL = "SAGEMAKER_CONTAINER_LOG_LEVEL"
    MODEL_SERVER_WORKERS = "SAGEMAKER_MODEL_SERVER_WORKERS"
    MODEL_SERVER_TIMEOUT = "SAGEMAKER_MODEL_SERVER_TIMEOUT"
    MODEL_DIR = "SM_MODEL_DIR"


# --- batch transform ------------------------------------------------------------------------
# The TransformJob's spec (ACK field names, JSON) for the driver in each job pod.
TRANSFORM_JOB_ENV: Final = "SAGEPORT_TRANSFORM_JOB"
# Set by Kubernetes in the pods of an indexed Job: which worker this pod is.
JOB_COMPLETION_INDEX_ENV: Final = "JOB_COMPLETION_INDEX"
# Kubernetes copies this file into the container's status (terminated.message): the driver's result.
TERMINATION_MESSAGE_PATH: Final = "/dev/termination-log"
# SageMaker's StopTransformJob without deleting the object (a TransformJob's spec is immutable):
# any value on this annotation asks the operator to stop the job; it ends in Stopped.
ANNOTATION_STOP_REQUESTED: Final = f"{API_GROUP}/stop-requested"
# On the Job, its pods and nothing else: the metadata.name of the TransformJob they run.
LABEL_TRANSFORM_JOB: Final = f"{API_GROUP}/transform-job"
# The TransformJob's uid, for the driver: written as S3 user metadata on each output object, so a
# worker that runs again after its pod died skips the objects this job already wrote.
TRANSFORM_JOB_UID_ENV: Final = "SAGEPORT_TRANSFORM_JOB_UID"
# How many times this worker's index failed before (Kubernetes' per-index failure count, which the
# pod gets through the downward API): 0 on a first run, when no output can be this job's yet.
TRANSFORM_RETRY_ENV: Final = "SAGEPORT_TRANSFORM_RETRY"
# The S3 user-metadata key (x-amz-meta-...) holding TRANSFORM_JOB_UID_ENV on each output object.
TRANSFORM_OUTPUT_METADATA: Final = "sageport-transform-job"


class TransformJobStatus(StrEnum):
    """SageMaker's TransformJobStatus values (status.transformJobStatus)."""

    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"


# --- statuses and strategies ----------------------------------------------------------------
class EndpointStatus(StrEnum):
    """SageMaker's EndpointStatus values."""

    OUT_OF_SERVICE = "OutOfService"
    CREATING = "Creating"
    UPDATING = "Updating"
    SYSTEM_UPDATING = "SystemUpdating"
    ROLLING_BACK = "RollingBack"
    IN_SERVICE = "InService"
    DELETING = "Deleting"
    FAILED = "Failed"
    UPDATE_ROLLBACK_FAILED = "UpdateRollbackFailed"


# The statuses in which SageMaker keeps serving traffic: an update or a rollback runs alongside
# the fleet that is already in service.
SERVING_STATUSES: Final = frozenset(
    {
        EndpointStatus.IN_SERVICE,
        EndpointStatus.UPDATING,
        EndpointStatus.SYSTEM_UPDATING,
        EndpointStatus.ROLLING_BACK,
        EndpointStatus.UPDATE_ROLLBACK_FAILED,
    }
)


class RoutingStrategy(StrEnum):
    """SageMaker's ProductionVariant RoutingConfig.RoutingStrategy values."""

    LEAST_OUTSTANDING_REQUESTS = "LEAST_OUTSTANDING_REQUESTS"
    RANDOM = "RANDOM"


class CaptureMode(StrEnum):
    """SageMaker's DataCaptureConfig CaptureOptions[].CaptureMode values."""

    INPUT = "Input"
    OUTPUT = "Output"
    INPUT_AND_OUTPUT = "InputAndOutput"


class CaptureStatus(StrEnum):
    """SageMaker's DataCaptureConfigSummary.CaptureStatus values."""

    STARTED = "Started"
    STOPPED = "Stopped"


# --- alarms ---------------------------------------------------------------------------------
# The Prometheus whose alerting rules are the alarms of autoRollbackConfiguration: the operator
# reads it from this variable (the chart's operator.alarms.prometheusUrl), and the local stack
# exports it under the same name for tests and shells.
PROMETHEUS_URL_ENV: Final = "SAGEPORT_PROMETHEUS_URL"


_LABEL_VALUE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")


def config_label(config_name: str) -> str:
    """The :data:`LABEL_CONFIG` value of an EndpointConfig name: the name itself when it is a
    valid label value (SageMaker names always are), else a digest of it. The operator writes
    it and the gateway computes it from the Endpoint's status, so both must use this."""
    if _LABEL_VALUE.fullmatch(config_name):
        return config_name
    return "h-" + hashlib.sha256(config_name.encode()).hexdigest()[:40]


def multi_model_id(target_model: str) -> str:
    """The name a multi-model container knows a TargetModel by (SageMaker's is opaque too): safe in
    a URL path and a directory name whatever the key holds, and the same in gateway and server."""
    return "m-" + hashlib.sha256(target_model.encode()).hexdigest()[:40]


# --- asynchronous inference -----------------------------------------------------------------
# Redis (Streams) holds the queue: one stream and one consumer group per async variant (see
# async_stream). The gateway appends, the agent sidecar of the variant's pods consumes. Both read
# Redis' URL and password from these variables (the chart's asyncInference.redis values).
REDIS_URL_ENV: Final = "SAGEPORT_REDIS_URL"
REDIS_PASSWORD_ENV: Final = "SAGEPORT_REDIS_PASSWORD"
# The key of the password in the Secret the chart names (asyncInference.redis.passwordSecret).
REDIS_PASSWORD_KEY: Final = "password"
ASYNC_GROUP: Final = "sageport-agents"
# The fields of a request record in the stream (values are strings, Body bytes).
ASYNC_ID_FIELD: Final = "call_id"
ASYNC_INPUT_FIELD: Final = "input_location"
ASYNC_BODY_FIELD: Final = "inline_body"
ASYNC_OUTPUT_FIELD: Final = "output_location"
ASYNC_FAILURE_FIELD: Final = "failure_location"
ASYNC_CONTENT_TYPE_FIELD: Final = "content_type"
ASYNC_ACCEPT_FIELD: Final = "accept_type"
ASYNC_CUSTOM_ATTRIBUTES_FIELD: Final = "custom_attributes"
ASYNC_RECEIVED_FIELD: Final = "received_ms"  # epoch milliseconds at the gateway
ASYNC_TTL_FIELD: Final = "ttl_seconds"  # RequestTTLSeconds
ASYNC_TIMEOUT_FIELD: Final = "timeout_seconds"  # InvocationTimeoutSeconds
# SageMaker's defaults (seconds).
ASYNC_DEFAULT_TTL: Final = 21600
ASYNC_DEFAULT_TIMEOUT: Final = 900
# What the agent's container is called in a variant pod.
ASYNC_AGENT_NAME: Final = "sageport-async-agent"
# The agent's own /ping and /metrics, in the model pod (the model keeps CONTAINER_PORT).
ASYNC_AGENT_PORT: Final = 9092


def async_stream(namespace: str, endpoint_name: str, variant: str) -> str:
    """The Redis stream of an async variant: the gateway appends to it, the agent of every pod of
    the variant (of any config: an update's new fleet drains the same queue) consumes it, and a
    KEDA redis-streams scaler can read its consumer group's lag. Names are SageMaker names (no
    colon can occur in them), so keys never collide."""
    return f"sageport:async:{namespace}:{endpoint_name}:{variant}"
