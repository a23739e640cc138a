"""The sageport.io/v1alpha1 API: pydantic models that are the contract users write YAML against."""

from .common import (
    API_VERSION,
    GROUP,
    VERSION,
    ApiModel,
    Condition,
    DeployedImage,
    ObjectMeta,
    ObjectStatus,
    Resource,
)
from .endpoint import (
    DataCaptureConfigSummary,
    DeploymentConfig,
    DesiredWeightAndCapacity,
    Endpoint,
    EndpointSpec,
    EndpointStatus,
    ProductionVariantSummary,
    RollingUpdatePolicy,
    TargetTrackingScalingPolicyConfiguration,
    VariantAutoScaling,
)
from .endpoint_config import (
    AsyncInferenceConfig,
    DataCaptureConfig,
    EndpointConfig,
    EndpointConfigSpec,
    ProductionVariant,
    ServerlessConfig,
)
from .instance_type import InstanceType, InstanceTypeSpec, Toleration
from .model import ContainerDefinition, Model, ModelSpec, ModelStatus
from .transform_job import TransformJob, TransformJobSpec, TransformJobStatus

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "ApiModel",
    "AsyncInferenceConfig",
    "Condition",
    "ContainerDefinition",
    "DataCaptureConfig",
    "DataCaptureConfigSummary",
    "DeployedImage",
    "DeploymentConfig",
    "DesiredWeightAndCapacity",
    "Endpoint",
    "EndpointConfig",
    "EndpointConfigSpec",
    "EndpointSpec",
    "EndpointStatus",
    "InstanceType",
    "InstanceTypeSpec",
    "Model",
    "ModelSpec",
    "ModelStatus",
    "ObjectMeta",
    "ObjectStatus",
    "ProductionVariant",
    "ProductionVariantSummary",
    "Resource",
    "RollingUpdatePolicy",
    "ServerlessConfig",
    "TargetTrackingScalingPolicyConfiguration",
    "Toleration",
    "TransformJob",
    "TransformJobSpec",
    "TransformJobStatus",
    "VariantAutoScaling",
]
