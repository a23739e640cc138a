"""InstanceType: the cluster-wide catalog mapping ``ml.*`` names to pod resources and placement."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from .common import ApiModel, Resource

QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$"


class Toleration(ApiModel):
    """A pod toleration (core/v1 Toleration)."""

    model_config = ApiModel.model_config | {"alias_generator": None}

    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    tolerationSeconds: int | None = None  # noqa: N815 - core/v1 field name

    def to_k8s(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class InstanceTypeSpec(ApiModel):
    """Resources each pod of this instance type gets, and where it may run."""

    cpu: Annotated[str, Field(pattern=QUANTITY_PATTERN)] = Field(description="CPU request and limit, e.g. 4.")
    memory: Annotated[str, Field(pattern=QUANTITY_PATTERN)] = Field(description="Memory, e.g. 16Gi.")
    gpu_count: int = Field(default=0, ge=0, description="Accelerators per pod (0 for CPU types).")
    gpu_resource_name: str = Field(
        default="nvidia.com/gpu", description="Extended resource the accelerators are requested as."
    )
    gpu_product: str | None = Field(
        default=None, description="Required value of the node label nvidia.com/gpu.product, e.g. NVIDIA-A10G."
    )
    node_selector: dict[str, str] | None = Field(default=None, description="Extra node labels pods require.")
    tolerations: list[Toleration] | None = Field(
        default=None, description="Taints pods of this type tolerate."
    )


class InstanceType(Resource):
    """An instance type of the catalog (cluster-scoped), named like ml.g5.xlarge."""

    kind: Literal["InstanceType"] = "InstanceType"
    spec: InstanceTypeSpec
