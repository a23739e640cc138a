"""Endpoint: a running, invocable deployment of an EndpointConfig (SageMaker CreateEndpoint)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, WithJsonSchema, model_validator

from sageport import contract

from .common import ApiModel, ObjectStatus, Resource, SageMakerName, Tag, enum_schema
from .endpoint_config import RoutingConfig, ServerlessConfig


class CapacitySize(ApiModel):
    """A number of instances or a percentage of the fleet."""

    type_: Literal["INSTANCE_COUNT", "CAPACITY_PERCENT"]
    value: int = Field(ge=1)


class TrafficRoutingConfiguration(ApiModel):
    """How traffic moves to the new fleet during a blue/green update."""

    type_: Literal["ALL_AT_ONCE", "CANARY", "LINEAR"]
    wait_interval_in_seconds: int = Field(ge=0, le=3600)
    canary_size: CapacitySize | None = None
    linear_step_size: CapacitySize | None = None


class BlueGreenUpdatePolicy(ApiModel):
    traffic_routing_configuration: TrafficRoutingConfiguration
    termination_wait_in_seconds: int | None = Field(default=None, ge=0, le=3600)
    maximum_execution_timeout_in_seconds: int | None = Field(default=None, ge=600, le=28800)


class RollingUpdatePolicy(ApiModel):
    maximum_batch_size: CapacitySize
    wait_interval_in_seconds: int = Field(ge=0, le=3600)
    maximum_execution_timeout_in_seconds: int | None = Field(default=None, ge=600, le=28800)
    rollback_maximum_batch_size: CapacitySize | None = None


class Alarm(ApiModel):
    alarm_name: str


class AutoRollbackConfiguration(ApiModel):
    alarms: list[Alarm] | None = Field(default=None, min_length=1, max_length=10)


class DeploymentConfig(ApiModel):
    """How an update (a new endpointConfigName) is rolled out and rolled back."""

    blue_green_update_policy: BlueGreenUpdatePolicy | None = None
    rolling_update_policy: RollingUpdatePolicy | None = None
    auto_rollback_configuration: AutoRollbackConfiguration | None = None


class VariantAutoScaling(ApiModel):
    """sageport extra (SageMaker does this through Application Auto Scaling): scale a variant's pods."""

    variant_name: SageMakerName
    min_instance_count: int = Field(ge=1, description="Lower bound of pods.")
    max_instance_count: int = Field(ge=1, description="Upper bound of pods.")
    target_cpu_utilization_percentage: int = Field(
        default=70, ge=1, le=100, description="Average CPU utilisation the autoscaler aims for."
    )

    @model_validator(mode="after")
    def _bounds_ordered(self) -> VariantAutoScaling:
        if self.min_instance_count > self.max_instance_count:
            raise ValueError(f"autoScaling {self.variant_name}: minInstanceCount exceeds maxInstanceCount")
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


class DeployedImage(ApiModel):
    specified_image: str | None = None
    resolved_image: str | None = None
    resolution_time: datetime | None = None


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


class PendingDeploymentSummary(ApiModel):
    """The update in progress, as DescribeEndpoint reports it: present only while a new
    EndpointConfig is being deployed (the current one keeps serving meanwhile)."""

    endpoint_config_name: str
    production_variants: list[ProductionVariantSummary] | None = None
    start_time: datetime | None = None


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
    pending_deployment_summary: PendingDeploymentSummary | None = None


class Endpoint(Resource):
    """A SageMaker Endpoint (sageport.io/v1alpha1): pods, Services and autoscaling per variant."""

    kind: Literal["Endpoint"] = "Endpoint"
    spec: EndpointSpec
    status: EndpointStatus | None = None

    @property
    def sagemaker_name(self) -> str:
        return self.spec.endpoint_name or self.metadata.name
