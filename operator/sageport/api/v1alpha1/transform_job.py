"""TransformJob: offline batch inference over S3 objects (SageMaker CreateTransformJob)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, model_validator

from sageport.contract import TransformJobStatus as TransformJobState

from .common import ApiModel, ObjectStatus, Resource, SageMakerName, Tag


class TransformS3DataSource(ApiModel):
    s3_data_type: Literal["S3Prefix", "ManifestFile", "AugmentedManifestFile"]
    s3_uri: Annotated[str, Field(max_length=1024, pattern=r"^(s3|https?)://.+$")]


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


class TransformJobSpec(ApiModel):
    """A batch transform job. Reconciled by the batch issue; accepted and validated today."""

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
            raise ValueError("maxConcurrentTransforms x maxPayloadInMB must not exceed 100")
        split = self.transform_input.split_type or "None"
        if self.batch_strategy is not None and split == "None":
            raise ValueError("batchStrategy needs transformInput.splitType other than None")
        return self


class TransformJobStatus(ObjectStatus):
    transform_job_status: TransformJobState | None = None
    failure_reason: str | None = Field(default=None, max_length=1024)
    transform_start_time: datetime | None = None
    transform_end_time: datetime | None = None


class TransformJob(Resource):
    """A SageMaker TransformJob (sageport.io/v1alpha1)."""

    kind: Literal["TransformJob"] = "TransformJob"
    spec: TransformJobSpec
    status: TransformJobStatus | None = None
