"""Endpoint: a running, invocable deployment of an EndpointConfig (SageMaker CreateEndpoint)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, WithJsonSchema, model_validator

from sageport import contract

from .common import ApiModel, DeployedImage, ObjectStatus, Resource, SageMakerName, Tag, enum_schema
from .endpoint_config import (
    AsyncInferenceConfig,
    CaptureContentTypeHeader,
    CaptureOption,
    RoutingConfig,
    ServerlessConfig,
)


class CapacitySize(ApiModel):
    """A number of instances or a percentage of the fleet."""

    type_: Literal["INSTANCE_COUNT", "CAPACITY_PERCENT"]
    value: int = Field(ge=1)

    def percent_outside(self, low: int, high: int) -> bool:
        return self.type_ == "CAPACITY_PERCENT" and not low <= self.value <= high


def linear_steps(percent: int) -> int:
    """Steps of a LINEAR shift by ``percent`` of the fleet: the last takes the rest, and a step
    within 5 % of the whole fleet is the last (33 % goes 33, 66, 100)."""
    return max(1, -(-95 // max(percent, 1)))


class TrafficRoutingConfiguration(ApiModel):
    """How traffic moves to the new fleet during a blue/green update."""

    type_: Literal["ALL_AT_ONCE", "CANARY", "LINEAR"]
    wait_interval_in_seconds: int = Field(ge=0, le=3600)
    canary_size: CapacitySize | None = None
    linear_step_size: CapacitySize | None = None

    @model_validator(mode="after")
    def _sizes_fit_the_type(self) -> TrafficRoutingConfiguration:
        wanted = {"CANARY": "canarySize", "LINEAR": "linearStepSize"}.get(self.type_)
        given = [
            name
            for name, size in (("canarySize", self.canary_size), ("linearStepSize", self.linear_step_size))
            if size
        ]
        if given != ([wanted] if wanted else []):
            need = f"needs {wanted}" if wanted else "takes no canarySize or linearStepSize"
            raise ValueError(
                f"trafficRoutingConfiguration type {self.type_} {need} (given: {', '.join(given) or 'none'})"
            )
        if self.canary_size and self.canary_size.percent_outside(1, 50):
            raise ValueError(f"canarySize is at most 50 % of the fleet (given {self.canary_size.value} %)")
        if self.linear_step_size and self.linear_step_size.percent_outside(10, 50):
            raise ValueError(
                f"linearStepSize is 10 to 50 % of the fleet (given {self.linear_step_size.value} %)"
            )
        return self

    def bakes(self) -> int:
        """How many times traffic moves and bakes: once, canary then the rest, or one per linear step."""
        if self.type_ == "CANARY":
            return 2
        if self.type_ == "LINEAR" and self.linear_step_size is not None:
            step = self.linear_step_size
            return linear_steps(step.value) if step.type_ == "CAPACITY_PERCENT" else 2
        return 1


class BlueGreenUpdatePolicy(ApiModel):
    traffic_routing_configuration: TrafficRoutingConfiguration
    termination_wait_in_seconds: int | None = Field(default=None, ge=0, le=3600)
    maximum_execution_timeout_in_seconds: int | None = Field(default=None, ge=600, le=28800)

    @model_validator(mode="after")
    def _timeout_exceeds_the_waits(self) -> BlueGreenUpdatePolicy:
        routing = self.traffic_routing_configuration
        waits = routing.bakes() * routing.wait_interval_in_seconds + (self.termination_wait_in_seconds or 0)
        timeout = self.maximum_execution_timeout_in_seconds
        if timeout is not None and timeout <= waits:
            raise ValueError(
                f"maximumExecutionTimeoutInSeconds ({timeout}) must exceed the sum of the waits ({waits} s: "
                f"{routing.bakes()} bake(s) of waitIntervalInSeconds plus terminationWaitInSeconds)"
            )
        return self


class RollingUpdatePolicy(ApiModel):
    maximum_batch_size: CapacitySize
    wait_interval_in_seconds: int = Field(ge=0, le=3600)
    maximum_execution_timeout_in_seconds: int | None = Field(default=None, ge=600, le=28800)
    rollback_maximum_batch_size: CapacitySize | None = None

    @model_validator(mode="after")
    def _batch_is_5_to_50_percent(self) -> RollingUpdatePolicy:
        if self.maximum_batch_size.percent_outside(5, 50):
            raise ValueError(
                f"maximumBatchSize is 5 to 50 % of the fleet (given {self.maximum_batch_size.value} %)"
            )
        timeout = self.maximum_execution_timeout_in_seconds
        if timeout is not None and timeout <= self.wait_interval_in_seconds:
            raise ValueError(
                f"maximumExecutionTimeoutInSeconds ({timeout}) must exceed waitIntervalInSeconds "
                f"({self.wait_interval_in_seconds})"
            )
        return self


class Alarm(ApiModel):
    alarm_name: str


class AutoRollbackConfiguration(ApiModel):
    alarms: list[Alarm] | None = Field(default=None, min_length=1, max_length=10)


class DeploymentConfig(ApiModel):
    """How an update (a new endpointConfigName) is rolled out and rolled back."""

    blue_green_update_policy: BlueGreenUpdatePolicy | None = None
    rolling_update_policy: RollingUpdatePolicy | None = None
    auto_rollback_configuration: AutoRollbackConfiguration | None = None

    @model_validator(mode="after")
    def _one_update_policy(self) -> DeploymentConfig:
        if self.blue_green_update_policy and self.rolling_update_policy:
            raise ValueError("set blueGreenUpdatePolicy or rollingUpdatePolicy, not both")
        return self


class PredefinedMetricSpecification(ApiModel):
    """Application Auto Scaling's predefined metric: SageMaker's invocations per instance."""

    predefined_metric_type: Literal["SageMakerVariantInvocationsPerInstance"] = Field(
        description=(
            "Calls per instance per minute, counted by the gateway (SageMaker's InvocationsPerInstance, "
            "Sum over a minute)."
        )
    )


class CustomizedMetricSpecification(ApiModel):
    """SageMaker's CPU target tracking: the instance metric CPUUtilization, Average."""

    metric_name: Literal["CPUUtilization"] = Field(
        description="Only CPUUtilization: the average CPU use of the variant's pods."
    )
    namespace: Literal["/aws/sagemaker/Endpoints"] = "/aws/sagemaker/Endpoints"
    statistic: Literal["Average"] = "Average"


class TargetTrackingScalingPolicyConfiguration(ApiModel):
    """Application Auto Scaling's target tracking policy for one variant (through KEDA)."""

    target_value: float = Field(
        gt=0,
        description=(
            "The metric's target: calls per instance per minute (SageMakerVariantInvocationsPerInstance), "
            "or percent of the pods' CPU request, 1 to 100 (CPUUtilization)."
        ),
    )
    predefined_metric_specification: PredefinedMetricSpecification | None = None
    customized_metric_specification: CustomizedMetricSpecification | None = None
    scale_in_cooldown: int | None = Field(
        default=None,
        ge=0,
        le=3600,
        description="Seconds of lower demand before instances go (the HPA's scale-down stabilization; default 300).",
    )
    scale_out_cooldown: int | None = Field(
        default=None,
        ge=0,
        le=3600,
        description="Seconds of higher demand before instances are added (scale-up stabilization; default 0).",
    )
    disable_scale_in: bool = Field(default=False, description="Never remove instances.")

    @model_validator(mode="after")
    def _one_metric(self) -> TargetTrackingScalingPolicyConfiguration:
        predefined, customized = self.predefined_metric_specification, self.customized_metric_specification
        if (predefined is None) == (customized is None):
            raise ValueError(
                "targetTrackingScalingPolicyConfiguration: set predefinedMetricSpecification "
                "(SageMakerVariantInvocationsPerInstance) or customizedMetricSpecification (CPUUtilization), "
                "exactly one"
            )
        if customized is not None and self.target_value > 100:
            raise ValueError(
                f"targetTrackingScalingPolicyConfiguration.targetValue {self.target_value:g} for CPUUtilization "
                "is a percentage of the pods' CPU request: 1 to 100"
            )
        return self


class VariantAutoScaling(ApiModel):
    """sageport extra (SageMaker does this through Application Auto Scaling): scale a variant's pods.

    Without a policy: a HorizontalPodAutoscaler on CPU (targetCpuUtilizationPercentage). With
    targetTrackingScalingPolicyConfiguration: a KEDA ScaledObject tracking that policy's metric."""

    variant_name: SageMakerName
    min_instance_count: int = Field(
        ge=0,
        description=(
            "Lower bound of pods. 0 (asynchronous endpoints only, SageMaker's MinCapacity 0): KEDA "
            "scales the variant to zero while its queue is empty and wakes it on backlog."
        ),
    )
    max_instance_count: int = Field(ge=1, description="Upper bound of pods.")
    target_cpu_utilization_percentage: int = Field(
        default=70,
        ge=1,
        le=100,
        description=(
            "Average CPU utilisation the autoscaler aims for (the CPU HPA, without "
            "targetTrackingScalingPolicyConfiguration; a policy on CPUUtilization has its own targetValue)."
        ),
    )
    target_tracking_scaling_policy_configuration: TargetTrackingScalingPolicyConfiguration | None = Field(
        default=None,
        description=(
            "SageMaker's target tracking (Application Auto Scaling PutScalingPolicy, TargetTrackingScaling) "
            "between minInstanceCount (MinCapacity) and maxInstanceCount (MaxCapacity), through KEDA."
        ),
    )

    @model_validator(mode="after")
    def _bounds_ordered(self) -> VariantAutoScaling:
        if self.min_instance_count > self.max_instance_count:
            raise ValueError(f"autoScaling {self.variant_name}: minInstanceCount exceeds maxInstanceCount")
        if self.target_tracking_scaling_policy_configuration is None:
            return self
        if self.min_instance_count == 0:
            raise ValueError(
                f"autoScaling {self.variant_name}: minInstanceCount 0 is for asynchronous endpoints scaled on "
                "their queue; targetTrackingScalingPolicyConfiguration needs minInstanceCount 1 or more"
            )
        return self


class DesiredWeightAndCapacity(ApiModel):
    """SageMaker's UpdateEndpointWeightsAndCapacities for one variant: applied in place, no new fleet."""

    variant_name: SageMakerName
    desired_weight: float | None = Field(default=None, ge=0, description="Replaces initialVariantWeight.")
    desired_instance_count: int | None = Field(
        default=None, ge=1, description="Replaces initialInstanceCount (not with spec.autoScaling)."
    )

    @model_validator(mode="after")
    def _sets_something(self) -> DesiredWeightAndCapacity:
        if self.desired_weight is None and self.desired_instance_count is None:
            raise ValueError(f"variant {self.variant_name}: set desiredWeight, desiredInstanceCount or both")
        return self


class EndpointSpec(ApiModel):
    """Which EndpointConfig to run. Changing endpointConfigName is an update."""

    endpoint_name: SageMakerName | None = Field(
        default=None, description="Name used to invoke the endpoint. Defaults to metadata.name."
    )
    endpoint_config_name: SageMakerName = Field(description="The EndpointConfig's spec.endpointConfigName.")
    deployment_config: DeploymentConfig | None = None
    tags: list[Tag] | None = Field(default=None, max_length=50)
    auto_scaling: list[VariantAutoScaling] | None = Field(
        default=None,
        description="sageport extra: per-variant pod autoscaling (a HorizontalPodAutoscaler on CPU).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["variantName"]},
    )
    desired_weights_and_capacities: list[DesiredWeightAndCapacity] | None = Field(
        default=None,
        max_length=10,
        description=(
            "sageport extra, SageMaker's UpdateEndpointWeightsAndCapacities: per-variant weight and "
            "instance count applied in place to the running config, with no new fleet."
        ),
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["variantName"]},
    )


EndpointStatusValue = Annotated[contract.EndpointStatus, WithJsonSchema(enum_schema(contract.EndpointStatus))]


class VariantStatus(ApiModel):
    status: Literal[
        contract.EndpointStatus.CREATING,
        contract.EndpointStatus.UPDATING,
        contract.EndpointStatus.DELETING,
        "ActivatingTraffic",
        "Baking",
    ]
    status_message: str | None = None
    start_time: datetime | None = None


class ProductionVariantSummary(ApiModel):
    """Per-variant state, as DescribeEndpoint reports it."""

    variant_name: str
    current_weight: float | None = None
    desired_weight: float | None = None
    current_instance_count: int | None = None
    desired_instance_count: int | None = None
    deployed_images: list[DeployedImage] | None = None
    variant_status: list[VariantStatus] | None = None
    current_serverless_config: ServerlessConfig | None = None
    desired_serverless_config: ServerlessConfig | None = None
    routing_config: RoutingConfig | None = Field(
        default=None, description="How the gateway picks an instance."
    )
    container_hostnames: list[str] | None = Field(
        default=None,
        description=(
            "sageport extra: the containers of a Direct multi-container variant, which "
            "TargetContainerHostname must name (the gateway checks it)."
        ),
    )
    pipeline_hostnames: list[str] | None = Field(
        default=None,
        description=(
            "sageport extra: the containers of a Serial inference pipeline variant, in the order "
            "each call goes through them."
        ),
    )
    multi_model: bool | None = Field(
        default=None,
        description="sageport extra: true on a multi-model variant, whose calls must name a TargetModel.",
    )
    model_setup_timeout_in_seconds: int | None = Field(
        default=None,
        description=(
            "sageport extra, serverless variants: how long the gateway holds a call while the variant "
            "scales from zero (the variant's containerStartupHealthCheckTimeoutInSeconds) before "
            "answering ModelNotReadyException."
        ),
    )


class TrafficShift(ApiModel):
    """sageport extra: where a blue/green update's traffic shift stands (the operator resumes
    from it after a restart)."""

    step: int = Field(ge=1, description="The step under way, from 1.")
    steps: int = Field(ge=1, description="Steps of the update policy (CANARY 2, ALL_AT_ONCE 1).")
    new_fleet_share: float = Field(ge=0, le=1, description="Share of the traffic on the new fleet.")
    step_start_time: datetime = Field(description="When this step moved the traffic (or began provisioning).")
    provisioning: bool = Field(
        default=False,
        description="The step's new instances are starting; its traffic moves once they are ready.",
    )


class PendingDeploymentSummary(ApiModel):
    """The update in progress, as DescribeEndpoint reports it: present only while a new
    EndpointConfig is being deployed (the current one keeps serving meanwhile)."""

    endpoint_config_name: str
    production_variants: list[ProductionVariantSummary] | None = None
    start_time: datetime | None = None
    shadow_production_variants: list[ProductionVariantSummary] | None = None
    traffic_shift: TrafficShift | None = Field(
        default=None, description="sageport extra: the traffic shift, once the new fleet is ready."
    )


CaptureStatusValue = Annotated[contract.CaptureStatus, WithJsonSchema(enum_schema(contract.CaptureStatus))]


class DataCaptureConfigSummary(ApiModel):
    """The data capture of the serving EndpointConfig, as DescribeEndpoint reports it
    (SageMaker's DataCaptureConfigSummary); captureOptions and captureContentTypeHeader are
    sageport's extension fields: what the gateway needs to capture."""

    enable_capture: bool
    capture_status: CaptureStatusValue = Field(description="Started, or Stopped when enableCapture is false.")
    current_sampling_percentage: int = Field(ge=0, le=100)
    destination_s3_uri: Annotated[str, Field(max_length=512)]
    kms_key_id: str | None = None
    capture_options: list[CaptureOption] | None = Field(
        default=None, description="sageport extension: the config's captureOptions."
    )
    capture_content_type_header: CaptureContentTypeHeader | None = Field(
        default=None, description="sageport extension: the config's captureContentTypeHeader."
    )


class EndpointStatus(ObjectStatus):
    """SageMaker's DescribeEndpoint view plus Kubernetes conditions (Ready)."""

    endpoint_status: EndpointStatusValue | None = None
    failure_reason: str | None = Field(default=None, max_length=1024)
    endpoint_config_name: str | None = Field(
        default=None, description="The config currently deployed (serving traffic)."
    )
    creation_time: datetime | None = None
    last_modified_time: datetime | None = None
    production_variants: list[ProductionVariantSummary] | None = None
    shadow_production_variants: list[ProductionVariantSummary] | None = Field(
        default=None, description="The shadow variants: a copy of requests goes to them."
    )
    pending_deployment_summary: PendingDeploymentSummary | None = None
    data_capture_config: DataCaptureConfigSummary | None = Field(
        default=None, description="The serving config's data capture; the gateway captures by it."
    )
    async_inference_config: AsyncInferenceConfig | None = Field(
        default=None,
        description="The serving config's asyncInferenceConfig (DescribeEndpoint's): the gateway queues by it.",
    )


class Endpoint(Resource):
    """A SageMaker Endpoint (sageport.io/v1alpha1): pods, Services and autoscaling per variant."""

    kind: Literal["Endpoint"] = "Endpoint"
    spec: EndpointSpec
    status: EndpointStatus | None = None

    @property
    def sagemaker_name(self) -> str:
        return self.spec.endpoint_name or self.metadata.name
