"""The standalone files: ``routes.yaml`` (endpoints -> variants -> backends) and ``keys.yaml``.

The file formats are fixed so that scripts can rely on them; see docs/readme-gateway.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sageport.api.v1alpha1 import AsyncInferenceConfig, DataCaptureConfig
from sageport.contract import RoutingStrategy
from sageport.gateway.auth import AccessKey
from sageport.gateway.capture import settings_from_config
from sageport.gateway.invocation import ENDPOINT_NAME_PATTERN
from sageport.gateway.routing import EndpointSpec, Serverless, VariantSpec


class ConfigError(ValueError):
    pass


class _ServerlessFile(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    max_concurrency: int = Field(alias="maxConcurrency", ge=1, le=200)
    model_setup_timeout_in_seconds: float = Field(default=240.0, alias="modelSetupTimeoutInSeconds", gt=0)
    provisioned_concurrency: int = Field(default=0, alias="provisionedConcurrency", ge=0, le=200)


class _VariantFile(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str
    weight: float = Field(default=1.0, ge=0.0)
    backends: list[str]
    routing_strategy: RoutingStrategy = Field(
        default=RoutingStrategy.LEAST_OUTSTANDING_REQUESTS, alias="routingStrategy"
    )
    container_hostnames: list[str] | None = Field(default=None, alias="containerHostnames")
    multi_model: bool = Field(default=False, alias="multiModel")  # calls name a TargetModel
    # A serverless variant: calls beyond maxConcurrency are throttled, and a call finding no
    # backend is held up to modelSetupTimeoutInSeconds (KEDA is told through --scaler-port).
    serverless: _ServerlessFile | None = None

    @field_validator("backends")
    @classmethod
    def _http_urls(cls, backends: list[str]) -> list[str]:
        for url in backends:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"backend {url!r} must be an http:// or https:// URL")
        return backends


class _EndpointFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variants: list[_VariantFile] = Field(min_length=1)
    # Shadow variants: ``weight`` is the fraction (0..1) of requests each gets a copy of.
    shadows: list[_VariantFile] = Field(default_factory=list)
    # An EndpointConfig's dataCaptureConfig, as written there (ACK names).
    data_capture_config: DataCaptureConfig | None = Field(default=None, alias="dataCaptureConfig")
    # An EndpointConfig's asyncInferenceConfig: the endpoint takes only InvokeEndpointAsync.
    async_inference_config: AsyncInferenceConfig | None = Field(default=None, alias="asyncInferenceConfig")


class _RoutesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoints: dict[str, _EndpointFile] = Field(default_factory=dict)


class _KeyFile(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    access_key_id: str = Field(alias="accessKeyId", min_length=1)
    secret_access_key: str = Field(alias="secretAccessKey", min_length=1, repr=False)
    endpoints: list[str] = Field(default_factory=lambda: ["*"])


class _KeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[_KeyFile] = Field(default_factory=list)


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from error


def _variant_spec(variant: _VariantFile) -> VariantSpec:
    hostnames = variant.container_hostnames
    return VariantSpec(
        name=variant.name,
        weight=variant.weight,
        backends=tuple(variant.backends),
        strategy=variant.routing_strategy,
        container_hostnames=frozenset(hostnames) if hostnames is not None else None,
        multi_model=variant.multi_model,
        serverless=Serverless(
            variant.serverless.max_concurrency,
            variant.serverless.model_setup_timeout_in_seconds,
            variant.serverless.provisioned_concurrency,
        )
        if variant.serverless is not None
        else None,
    )


def parse_routes(document: Any) -> list[EndpointSpec]:
    try:
        parsed = _RoutesFile.model_validate(document)
    except ValidationError as error:
        raise ConfigError(f"invalid routes: {error}") from error
    specs = []
    for name, endpoint in parsed.endpoints.items():
        if len(name) > 63 or ENDPOINT_NAME_PATTERN.fullmatch(name) is None:
            raise ConfigError(f"invalid endpoint name {name!r}")
        variants = tuple(_variant_spec(variant) for variant in endpoint.variants)
        shadows = tuple(_variant_spec(shadow) for shadow in endpoint.shadows)
        if any(shadow.weight > 1 for shadow in shadows):
            raise ConfigError(
                f"endpoint {name!r}: a shadow's weight is the fraction of requests copied, 0..1"
            )
        capture = endpoint.data_capture_config
        settings = settings_from_config(capture) if capture is not None else None
        if capture is not None and settings is None and capture.enable_capture is not False:
            raise ConfigError(f"endpoint {name!r}: dataCaptureConfig needs an s3://bucket/prefix destination")
        async_paths = None
        if endpoint.async_inference_config is not None:
            output = endpoint.async_inference_config.output_config
            if not output.s3_output_path:
                raise ConfigError(f"endpoint {name!r}: asyncInferenceConfig needs outputConfig.s3OutputPath")
            async_paths = (output.s3_output_path, output.s3_failure_path)
        specs.append(
            EndpointSpec(
                name=name, variants=variants, shadows=shadows, capture=settings, async_paths=async_paths
            )
        )
    return specs


def parse_keys(document: Any) -> list[AccessKey]:
    try:
        parsed = _KeysFile.model_validate(document)
    except ValidationError as error:
        # Pydantic echoes input values; never let a secret reach the message.
        raise ConfigError(f"invalid keys file ({error.error_count()} error(s) in structure)") from None
    return [
        AccessKey(
            access_key_id=key.access_key_id,
            secret_access_key=key.secret_access_key,
            endpoints=None if "*" in key.endpoints else frozenset(key.endpoints),
            namespaces=None,
        )
        for key in parsed.keys
    ]


def load_routes(path: Path) -> list[EndpointSpec]:
    return parse_routes(_load_yaml(path))


def load_keys(path: Path) -> list[AccessKey]:
    return parse_keys(_load_yaml(path))
