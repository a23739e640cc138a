"""Shared building blocks of the sageport.io/v1alpha1 API.

Field names on the wire are ACK's (aws-controllers-k8s sagemaker-controller) spellings, so a
manifest written for ACK validates here after changing only ``apiVersion``. Python attributes
are snake_case; :func:`ack_alias` derives the wire name, capitalising initialisms as ACK does.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sageport import contract

GROUP = contract.API_GROUP
VERSION = contract.API_VERSION_NAME
API_VERSION = contract.API_VERSION


def enum_schema(values: type[StrEnum]) -> dict[str, Any]:
    """The schema of a contract enum used as a field type: its values, as a Literal's would be
    (without it pydantic adds the enum's docstring, and the CRDs would change)."""
    return {"enum": [member.value for member in values], "type": "string"}


# Words ACK writes as capitalised initialisms when they are not the first word.
_INITIALISMS = {
    "ami": "AMI",
    "arn": "ARN",
    "gb": "GB",
    "id": "ID",
    "ids": "IDs",
    "kms": "KMS",
    "mb": "MB",
    "ssm": "SSM",
    "uri": "URI",
    "url": "URL",
    "cpu": "CPU",
}


def ack_alias(name: str) -> str:
    """``model_data_url`` -> ``modelDataURL``; a trailing underscore (``type_``) is kept as ACK does."""
    if name.endswith("_"):
        return name
    first, *rest = name.split("_")
    return first + "".join(_INITIALISMS.get(word, word.capitalize()) for word in rest)


class ApiModel(BaseModel):
    """Base of every API object: ACK wire names, unknown fields rejected, Python names accepted too."""

    model_config = ConfigDict(
        alias_generator=ack_alias,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """The object as it appears in YAML: ACK names, unset fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


# SageMaker resource names: ModelName, EndpointConfigName, EndpointName, VariantName.
SAGEMAKER_NAME_PATTERN = r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$"
SageMakerName = Annotated[str, Field(min_length=1, max_length=63, pattern=SAGEMAKER_NAME_PATTERN)]


class Tag(ApiModel):
    """A key/value tag, kept for compatibility with ACK manifests; sageport copies tags to no child."""

    key: Annotated[str, Field(min_length=1, max_length=128)]
    value: Annotated[str, Field(max_length=256)] = ""


class VpcConfig(ApiModel):
    """Accepted for ACK compatibility and ignored: pods use the cluster network."""

    security_group_ids: list[str] | None = None
    subnets: list[str] | None = None


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """A status condition shaped like metav1.Condition."""

    model_config = ConfigDict(alias_generator=None, populate_by_name=True, extra="forbid", frozen=True)

    type: Annotated[str, Field(min_length=1, max_length=316, description="Condition type, e.g. Ready.")]
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: Annotated[
        str, Field(max_length=1024, description="CamelCase reason for the last transition.")
    ] = ""
    message: Annotated[str, Field(max_length=32768, description="Human-readable details: what to fix.")] = ""
    lastTransitionTime: datetime | None = Field(  # noqa: N815 - metav1 field name
        default=None, description="When the status last changed."
    )
    observedGeneration: int | None = Field(  # noqa: N815 - metav1 field name
        default=None, description="The .metadata.generation this condition was computed from."
    )


class ObjectStatus(ApiModel):
    """Status every sageport kind carries: the generation seen and the conditions."""

    observed_generation: int | None = Field(
        default=None, description="The .metadata.generation the operator last acted on."
    )
    conditions: list[Condition] | None = Field(
        default=None,
        description="Kubernetes conditions; Ready summarises the object.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class DeployedImage(ApiModel):
    """The image a container runs, as SageMaker's DeployedImage reports it."""

    specified_image: str | None = Field(
        default=None, description="The image the Model names (sageport's model server when it names none)."
    )
    resolved_image: str | None = Field(
        default=None,
        description=(
            "The image that runs: the specified one, or the image the operator's image map gives "
            "for it (SageMaker's framework containers -> sageport's model server)."
        ),
    )
    resolution_time: datetime | None = Field(default=None, description="When the operator resolved it.")


class ObjectMeta(BaseModel):
    """The part of metadata the operator reads."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    name: str
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    deletion_timestamp: str | None = Field(default=None, alias="deletionTimestamp")
    creation_timestamp: str | None = Field(default=None, alias="creationTimestamp")


class Resource(BaseModel):
    """Envelope of a custom resource: apiVersion, kind, metadata. Subclasses add spec and status."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    api_version: str = Field(default=API_VERSION, alias="apiVersion")
    kind: str
    metadata: ObjectMeta
