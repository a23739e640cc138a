"""What `make up` exports: plain boto3 finds both SageMaker APIs through the environment."""

from __future__ import annotations

import pytest

from sageport_dev.local_stack import StackEnv

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
