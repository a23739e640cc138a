"""What `make up` exports: plain boto3 finds both SageMaker APIs through the environment."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from sageport_dev.local_stack import StackEnv, sdk_config_yaml

ENV = StackEnv(
    kubeconfig="/tmp/s/kubeconfig",
    runtime_url="http://10.96.0.10:80",
    s3_url="http://10.85.0.1:9000",
    access_key_id="AKIA",
    secret_access_key="secret",
    region="us-east-1",
    namespace="sagemaker",
    bucket="sageport-models",
    images=(),
)


def test_both_sagemaker_clients_are_pointed_at_the_gateway() -> None:
    environ = ENV.environ()
    assert environ["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] == "http://10.96.0.10:80"
    assert environ["AWS_ENDPOINT_URL_SAGEMAKER"] == "http://10.96.0.10:80"
    assert "export AWS_ENDPOINT_URL_SAGEMAKER=http://10.96.0.10:80" in ENV.exports().splitlines()


def test_boto3_uses_the_exported_control_plane_url(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3  # type: ignore[import-untyped]

    for name, value in ENV.environ().items():
        monkeypatch.setenv(name, value)
    client = boto3.client("sagemaker")
    assert client.meta.endpoint_url == "http://10.96.0.10:80"


def test_the_sagemaker_sdk_finds_its_default_bucket_without_asking_aws_sts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import warnings

    config = tmp_path / "sdk.yaml"
    config.write_text(sdk_config_yaml("sageport-models"))
    environ = replace(ENV, sdk_config=str(config)).environ()
    assert environ["SAGEMAKER_ADMIN_CONFIG_OVERRIDE"] == str(config)
    assert "SAGEMAKER_ADMIN_CONFIG_OVERRIDE" not in ENV.environ()
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import boto3
        import sagemaker  # type: ignore[import-untyped]
        from sagemaker.config import load_sagemaker_config  # type: ignore[import-untyped]

        session = sagemaker.Session(boto_session=boto3.Session(), sagemaker_config=load_sagemaker_config())
    # The SDK's own resolution: the configured bucket, not sagemaker-<region>-<account> from STS.
    assert session._default_bucket_name_override == "sageport-models"
