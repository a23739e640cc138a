"""Model: what to run (container image, artifact, environment), as SageMaker CreateModel."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from .common import ApiModel, DeployedImage, ObjectStatus, Resource, SageMakerName, Tag, VpcConfig

# Where model artifacts may come from: SageMaker's s3:// and https://, plus in-cluster sources.
MODEL_DATA_URL_PATTERN = r"^(s3|https?|file|pvc)://.+$"
HOSTNAME_PATTERN = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"
ENV_NAME_PATTERN = r"^[a-zA-Z_][a-zA-Z0-9_]*$"


class RepositoryAuthConfig(ApiModel):
    """Private registry credentials provider (AWS). Accepted for compatibility; use imagePullSecrets."""

    repository_credentials_provider_arn: str


class ImageConfig(ApiModel):
    """How the image is pulled. Accepted for ACK compatibility."""

    repository_access_mode: Literal["Platform", "Vpc"]
    repository_auth_config: RepositoryAuthConfig | None = None


class ModelAccessConfig(ApiModel):
    """Acceptance of a model's end-user licence, for gated models."""

    accept_eula: bool


class S3DataSource(ApiModel):
    """An S3 location holding the model: one object, or every object under a prefix."""

    s3_uri: Annotated[str, Field(max_length=1024, pattern=r"^(s3|https?)://.+$")]
    s3_data_type: Literal["S3Prefix", "S3Object"]
    compression_type: Literal["None", "Gzip"]
    model_access_config: ModelAccessConfig | None = None


class ModelDataSource(ApiModel):
    """Where the model artifacts are, as an alternative to modelDataURL."""

    s3_data_source: S3DataSource


class MultiModelConfig(ApiModel):
    """Multi-model endpoint caching."""

    model_cache_setting: Literal["Enabled", "Disabled"] | None = Field(
        default=None, description="Disabled unloads and deletes each model right after its invocation."
    )


class ContainerDefinition(ApiModel):
    """One inference container: image, model artifact and environment (SageMaker ContainerDefinition)."""

    container_hostname: Annotated[str, Field(max_length=63, pattern=HOSTNAME_PATTERN)] | None = Field(
        default=None,
        description="Names the container in a multi-container model; required on every container in Direct mode.",
    )
    image: Annotated[str, Field(min_length=1, max_length=255, pattern=r"^\S+$")] | None = Field(
        default=None,
        description="Container image. When absent the operator runs sageport's own model server image.",
    )
    image_config: ImageConfig | None = None
    mode: Literal["SingleModel", "MultiModel"] | None = Field(
        default=None, description="SingleModel (default) or MultiModel (modelDataURL is a prefix of models)."
    )
    model_data_url: Annotated[str, Field(max_length=1024, pattern=MODEL_DATA_URL_PATTERN)] | None = Field(
        default=None,
        description=(
            "Model artifact, fetched into /opt/ml/model before the container starts: s3://bucket/key, "
            "https://..., file:///path on the node, or pvc://<claim>/<path>. A .tar.gz is unpacked."
        ),
    )
    model_data_source: ModelDataSource | None = None
    environment: dict[str, Annotated[str, Field(max_length=1024)]] | None = Field(
        default=None,
        max_length=100,
        description="Environment variables of the container (at most 100).",
        json_schema_extra={"propertyNames": {"pattern": ENV_NAME_PATTERN, "maxLength": 1024}},
    )
    model_package_name: str | None = Field(
        default=None, description="Model-registry package; not supported by sageport (accepted for ACK)."
    )
    inference_specification_name: str | None = None
    multi_model_config: MultiModelConfig | None = None


class InferenceExecutionConfig(ApiModel):
    """How the containers of a multi-container model are called."""

    mode: Literal["Serial", "Direct"] = Field(
        description="Serial chains the containers as a pipeline; Direct invokes one by TargetContainerHostname."
    )


class ModelSpec(ApiModel):
    """A model to host: one primary container, or up to 15 containers (a pipeline or Direct mode)."""

    model_name: SageMakerName | None = Field(
        default=None,
        description="SageMaker model name that EndpointConfigs refer to. Defaults to metadata.name.",
    )
    primary_container: ContainerDefinition | None = None
    containers: list[ContainerDefinition] | None = Field(default=None, min_length=1, max_length=15)
    inference_execution_config: InferenceExecutionConfig | None = None
    execution_role_arn: str | None = Field(
        default=None, description="Accepted for ACK compatibility; pods use their service account."
    )
    enable_network_isolation: bool | None = None
    vpc_config: VpcConfig | None = None
    tags: list[Tag] | None = Field(default=None, max_length=50)

    @model_validator(mode="after")
    def _containers_are_consistent(self) -> ModelSpec:
        if (self.primary_container is None) == (self.containers is None):
            raise ValueError("set exactly one of primaryContainer and containers")
        containers = self.all_containers()
        hostnames = [c.container_hostname for c in containers]
        named = [h for h in hostnames if h]
        if named and len(named) != len(containers):
            raise ValueError("if one container sets containerHostname, every container must")
        if len(set(named)) != len(named):
            raise ValueError(f"containerHostname values must be unique, got {named}")
        mode = self.inference_execution_config.mode if self.inference_execution_config else "Serial"
        if mode == "Direct" and not named:
            raise ValueError(
                "inferenceExecutionConfig.mode Direct needs containerHostname on every container"
            )
        if self.containers is not None and any(c.mode == "MultiModel" for c in self.containers):
            raise ValueError(
                "mode MultiModel is supported on primaryContainer only: put the multi-model container "
                "in primaryContainer (a pipeline holding one is not supported yet)"
            )
        return self

    def all_containers(self) -> list[ContainerDefinition]:
        """The containers in order: the primary container alone, or the list."""
        if self.primary_container is not None:
            return [self.primary_container]
        return list(self.containers or [])


class ModelStatus(ObjectStatus):
    """Whether the spec is usable (Ready), and the image each container runs."""

    deployed_images: list[DeployedImage] | None = Field(
        default=None,
        description=(
            "One per container, in order: the image the Model names and the image its pods run "
            "(SageMaker's framework containers run sageport's model server; see the chart's "
            "operator.imageMap)."
        ),
    )


class Model(Resource):
    """A SageMaker Model (sageport.io/v1alpha1). Its spec is immutable, as in SageMaker."""

    kind: Literal["Model"] = "Model"
    spec: ModelSpec
    status: ModelStatus | None = None

    @property
    def sagemaker_name(self) -> str:
        return self.spec.model_name or self.metadata.name
