"""TransformJob: offline batch inference over S3 objects (SageMaker CreateTransformJob)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, model_validator

from sageport.contract import TransformJobStatus as TransformJobState

from .common import ApiModel, ObjectStatus, Resource, SageMakerName, Tag

AUGMENTED_MANIFEST_REFUSED = (
    "AugmentedManifestFile is not supported by batch transform (SageMaker documents it as not "
    "compatible with transform jobs): use S3Prefix or ManifestFile"
)


class TransformS3DataSource(ApiModel):
    """S3Prefix: every object whose key starts with s3URI; ManifestFile: the objects a JSON manifest lists."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "self.s3DataType != 'AugmentedManifestFile'",
                    "fieldPath": ".s3DataType",
                    "message": AUGMENTED_MANIFEST_REFUSED,
                }
            ]
        }
    }

    s3_data_type: Literal["S3Prefix", "ManifestFile", "AugmentedManifestFile"]
    s3_uri: Annotated[str, Field(max_length=1024, pattern=r"^(s3|https?)://.+$")]

    @model_validator(mode="after")
    def _transformable(self) -> TransformS3DataSource:
        if self.s3_data_type == "AugmentedManifestFile":
            raise ValueError(AUGMENTED_MANIFEST_REFUSED)
        return self


class TransformDataSource(ApiModel):
    s3_data_source: TransformS3DataSource


class TransformInput(ApiModel):
    """Which objects to read and how to split them into records."""

    data_source: TransformDataSource
    content_type: str | None = None
    compression_type: Literal["None", "Gzip"] | None = None
    split_type: Literal["None", "Line", "RecordIO", "TFRecord"] | None = None


class TransformOutput(ApiModel):
    """Where ``<key>.out`` objects are written."""

    s3_output_path: Annotated[str, Field(max_length=1024, pattern=r"^(s3|https?)://.+$")]
    accept: str | None = None
    assemble_with: Literal["None", "Line"] | None = None
    kms_key_id: str | None = None


class TransformResources(ApiModel):
    instance_type: str
    instance_count: int = Field(ge=1, le=100)
    volume_kms_key_id: str | None = None
    transform_ami_version: str | None = None


class ModelClientConfig(ApiModel):
    invocations_timeout_in_seconds: int | None = Field(default=None, ge=1, le=3600)
    invocations_max_retries: int | None = Field(default=None, ge=0, le=3)


class DataProcessing(ApiModel):
    input_filter: Annotated[str, Field(max_length=63)] | None = None
    output_filter: Annotated[str, Field(max_length=63)] | None = None
    join_source: Literal["Input", "None"] | None = None


PAYLOAD_BUDGET = "maxConcurrentTransforms x maxPayloadInMB must not exceed 100 (MB), as in SageMaker"
STRATEGY_NEEDS_SPLIT = (
    "batchStrategy needs transformInput.splitType Line, RecordIO or TFRecord (SageMaker: "
    "BatchStrategy requires a SplitType other than None)"
)


class TransformJobSpec(ApiModel):
    """A batch transform job (immutable); stop it with the annotation sageport.io/stop-requested or by deleting it."""

    # The rules the API server checks (the model validator below checks the same in Python).
    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "(has(self.maxConcurrentTransforms) && self.maxConcurrentTransforms > 0 ? "
                    "self.maxConcurrentTransforms : 1) * (has(self.maxPayloadInMB) ? self.maxPayloadInMB : 6)"
                    " <= 100",
                    "fieldPath": ".maxPayloadInMB",
                    "message": PAYLOAD_BUDGET,
                },
                {
                    "rule": "!has(self.batchStrategy) || (has(self.transformInput.splitType) && "
                    "self.transformInput.splitType != 'None')",
                    "fieldPath": ".batchStrategy",
                    "message": STRATEGY_NEEDS_SPLIT,
                },
            ]
        }
    }

    transform_job_name: SageMakerName | None = Field(default=None, description="Defaults to metadata.name.")
    model_name: SageMakerName
    transform_input: TransformInput
    transform_output: TransformOutput
    transform_resources: TransformResources
    batch_strategy: Literal["MultiRecord", "SingleRecord"] | None = None
    max_concurrent_transforms: int | None = Field(default=None, ge=0)
    max_payload_in_mb: int | None = Field(default=None, ge=0, le=100)
    model_client_config: ModelClientConfig | None = None
    data_processing: DataProcessing | None = None
    environment: dict[str, str] | None = Field(default=None, max_length=16)
    tags: list[Tag] | None = Field(default=None, max_length=50)

    @model_validator(mode="after")
    def _payload_budget(self) -> TransformJobSpec:
        concurrency = self.max_concurrent_transforms or 1
        payload = 6 if self.max_payload_in_mb is None else self.max_payload_in_mb
        if concurrency * payload > 100:
            raise ValueError(PAYLOAD_BUDGET)
        split = self.transform_input.split_type or "None"
        if self.batch_strategy is not None and split == "None":
            raise ValueError(STRATEGY_NEEDS_SPLIT)
        return self


class TransformJobStatus(ObjectStatus):
    """SageMaker's status fields, and conditions Ready and Succeeded (kubectl wait --for=condition=Succeeded)."""

    transform_job_status: TransformJobState | None = Field(
        default=None, description="InProgress, Completed, Failed, Stopping or Stopped (SageMaker's)."
    )
    failure_reason: str | None = Field(
        default=None, max_length=1024, description="Why it failed: the object's S3 URI and the error."
    )
    transform_start_time: datetime | None = Field(default=None, description="When its pods were started.")
    transform_end_time: datetime | None = Field(
        default=None, description="When it reached Completed, Failed or Stopped."
    )
    job_name: str | None = Field(default=None, description="sageport: the batch/v1 Job that runs it.")


class TransformJob(Resource):
    """A SageMaker TransformJob (sageport.io/v1alpha1)."""

    kind: Literal["TransformJob"] = "TransformJob"
    spec: TransformJobSpec
    status: TransformJobStatus | None = None
