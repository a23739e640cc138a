"""EndpointConfig: which models run where, with how much traffic (SageMaker CreateEndpointConfig)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, WithJsonSchema, model_validator

from sageport import contract

from .common import ApiModel, ObjectStatus, Resource, SageMakerName, Tag, VpcConfig, enum_schema


class ServerlessConfig(ApiModel):
    """A serverless variant: memory size and concurrency instead of instances; scales to zero."""

    memory_size_in_mb: int = Field(
        ge=1024, le=6144, multiple_of=1024, description="Memory of each instance: 1024..6144 in 1024 steps."
    )
    max_concurrency: int = Field(ge=1, le=200, description="Maximum concurrent invocations (1..200).")
    provisioned_concurrency: int | None = Field(
        default=None, ge=1, le=200, description="Concurrency kept warm (1..200, at most maxConcurrency)."
    )

    @model_validator(mode="after")
    def _provisioned_within_max(self) -> ServerlessConfig:
        if self.provisioned_concurrency is not None and self.provisioned_concurrency > self.max_concurrency:
            raise ValueError("provisionedConcurrency must not exceed maxConcurrency")
        return self


class ManagedInstanceScaling(ApiModel):
    """SageMaker-managed instance scaling bounds."""

    status: Literal["ENABLED", "DISABLED"] | None = None
    min_instance_count: int | None = Field(default=None, ge=0)
    max_instance_count: int | None = Field(default=None, ge=1)


RoutingStrategy = Annotated[contract.RoutingStrategy, WithJsonSchema(enum_schema(contract.RoutingStrategy))]


class RoutingConfig(ApiModel):
    """How the gateway picks an instance of the variant."""

    routing_strategy: RoutingStrategy


class CoreDumpConfig(ApiModel):
    """Where core dumps go. Accepted for ACK compatibility."""

    destination_s3_uri: str
    kms_key_id: str | None = None


class CapacityReservationConfig(ApiModel):
    """Capacity reservation. Accepted for ACK compatibility."""

    capacity_reservation_preference: str | None = None
    ml_reservation_arn: str | None = None


class ProductionVariant(ApiModel):
    """One fleet behind the endpoint: a model on instances of one type, with a traffic weight."""

    variant_name: SageMakerName = Field(description="Unique within the config, e.g. AllTraffic.")
    model_name: SageMakerName | None = Field(default=None, description="The Model's spec.modelName.")
    initial_instance_count: int | None = Field(default=None, ge=1, description="Pods to start with.")
    instance_type: Annotated[str, Field(max_length=63)] | None = Field(
        default=None, description="An InstanceType name, e.g. ml.m5.large or ml.g5.xlarge."
    )
    initial_variant_weight: float | None = Field(
        default=None, ge=0, description="Traffic share = weight / sum of weights. Default 1.0."
    )
    accelerator_type: str | None = Field(default=None, description="Deprecated Elastic Inference; ignored.")
    volume_size_in_gb: int | None = Field(default=None, ge=1, le=512)
    model_data_download_timeout_in_seconds: int | None = Field(default=None, ge=60, le=3600)
    container_startup_health_check_timeout_in_seconds: int | None = Field(
        default=None, ge=60, le=3600, description="Time the container has to pass GET /ping. Default 240."
    )
    enable_ssm_access: bool | None = None
    serverless_config: ServerlessConfig | None = None
    managed_instance_scaling: ManagedInstanceScaling | None = None
    routing_config: RoutingConfig | None = None
    core_dump_config: CoreDumpConfig | None = None
    capacity_reservation_config: CapacityReservationConfig | None = None

    @model_validator(mode="after")
    def _instances_or_serverless(self) -> ProductionVariant:
        if self.serverless_config is not None:
            if self.instance_type is not None or self.initial_instance_count is not None:
                raise ValueError(
                    f"variant {self.variant_name}: serverlessConfig replaces instanceType and "
                    "initialInstanceCount; set one or the other"
                )
            if self.accelerator_type is not None:
                raise ValueError(
                    f"variant {self.variant_name}: serverless variants have no GPU or accelerator; "
                    "remove acceleratorType (or use instanceType with a GPU instance type)"
                )
        elif self.instance_type is None or self.initial_instance_count is None:
            raise ValueError(
                f"variant {self.variant_name}: set instanceType and initialInstanceCount (or serverlessConfig)"
            )
        return self

    @property
    def weight(self) -> float:
        return 1.0 if self.initial_variant_weight is None else self.initial_variant_weight


CaptureMode = Annotated[contract.CaptureMode, WithJsonSchema(enum_schema(contract.CaptureMode))]


class CaptureOption(ApiModel):
    """What is captured: the request (Input), the response (Output) or both (InputAndOutput)."""

    capture_mode: CaptureMode


class CaptureContentTypeHeader(ApiModel):
    """Content types captured as text (encoding CSV or JSON); any other is captured as BASE64."""

    csv_content_types: list[str] | None = None
    json_content_types: list[str] | None = None


class DataCaptureConfig(ApiModel):
    """Capture of requests and responses to S3, in SageMaker's capture format (JSON lines under
    destinationS3URI/<endpoint>/<variant>/yyyy/mm/dd/hh/), written by the gateway."""

    enable_capture: bool | None = Field(default=None, description="Default true.")
    initial_sampling_percentage: int = Field(ge=0, le=100, description="Share of invocations captured.")
    destination_s3_uri: Annotated[str, Field(max_length=512)] = Field(description="s3://bucket/prefix")
    kms_key_id: str | None = Field(default=None, description="KMS key for S3 server-side encryption.")
    capture_options: list[CaptureOption] = Field(min_length=1, max_length=32)
    capture_content_type_header: CaptureContentTypeHeader | None = Field(
        default=None, description="Without it every payload is captured as BASE64."
    )


class AsyncInferenceClientConfig(ApiModel):
    max_concurrent_invocations_per_instance: int | None = Field(
        default=None, ge=1, le=1000, description="Calls each instance runs at once (default 1)."
    )


class AsyncInferenceNotificationConfig(ApiModel):
    success_topic: str | None = Field(
        default=None, description="An http(s):// URL POSTed SageMaker's notification of each output."
    )
    error_topic: str | None = Field(
        default=None, description="An http(s):// URL POSTed SageMaker's notification of each failure."
    )
    include_inference_response_in: (
        Annotated[
            list[Literal["SUCCESS_NOTIFICATION_TOPIC", "ERROR_NOTIFICATION_TOPIC"]], Field(max_length=2)
        ]
        | None
    ) = Field(
        default=None,
        description="Topics whose notifications carry the model's answer itself (answers up to 128 KB).",
    )


class AsyncInferenceOutputConfig(ApiModel):
    s3_output_path: Annotated[str, Field(max_length=512)] | None = Field(
        default=None, description="s3://bucket/prefix: each output lands at <path>/<InferenceId>.out."
    )
    s3_failure_path: Annotated[str, Field(max_length=512)] | None = Field(
        default=None, description="s3://bucket/prefix: each failure lands at <path>/<InferenceId>-error.out."
    )
    kms_key_id: str | None = None
    notification_config: AsyncInferenceNotificationConfig | None = None


class AsyncInferenceConfig(ApiModel):
    """Makes the endpoint asynchronous: calls are queued (Redis Streams) and an agent in each
    instance writes their results to S3."""

    client_config: AsyncInferenceClientConfig | None = None
    output_config: AsyncInferenceOutputConfig


class EndpointConfigSpec(ApiModel):
    """Production variants (1..10, unique names) and endpoint-wide options."""

    endpoint_config_name: SageMakerName | None = Field(
        default=None, description="SageMaker name that Endpoints refer to. Defaults to metadata.name."
    )
    production_variants: list[ProductionVariant] = Field(
        min_length=1,
        max_length=10,
        description="1..10 variants with unique variantName.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["variantName"]},
    )
    shadow_production_variants: list[ProductionVariant] | None = Field(
        default=None,
        min_length=1,
        max_length=10,
        description=(
            "SageMaker's ShadowProductionVariants (not in ACK): a copy of every request goes to these "
            "and their answers are discarded; with them, exactly one production variant. A shadow's "
            "initialVariantWeight over the production variant's is the fraction of requests copied."
        ),
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["variantName"]},
    )
    data_capture_config: DataCaptureConfig | None = None
    async_inference_config: AsyncInferenceConfig | None = None
    kms_key_id: str | None = None
    execution_role_arn: str | None = None
    enable_network_isolation: bool | None = None
    vpc_config: VpcConfig | None = None
    tags: list[Tag] | None = Field(default=None, max_length=50)

    @model_validator(mode="after")
    def _variants_are_consistent(self) -> EndpointConfigSpec:
        shadows = self.shadow_production_variants or []
        names = [v.variant_name for v in [*self.production_variants, *shadows]]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(
                f"variantName must be unique across production and shadow variants; repeated: {', '.join(duplicates)}"
            )
        if shadows and len(self.production_variants) != 1:
            raise ValueError(
                "with shadowProductionVariants, productionVariants must hold exactly one variant "
                f"(it has {len(self.production_variants)})"
            )
        if sum(v.weight for v in self.production_variants) <= 0:
            raise ValueError("at least one variant needs initialVariantWeight > 0")
        return self


class EndpointConfig(Resource):
    """A SageMaker EndpointConfig (sageport.io/v1alpha1). Its spec is immutable, as in SageMaker."""

    kind: Literal["EndpointConfig"] = "EndpointConfig"
    spec: EndpointConfigSpec
    status: ObjectStatus | None = None

    @property
    def sagemaker_name(self) -> str:
        return self.spec.endpoint_config_name or self.metadata.name
