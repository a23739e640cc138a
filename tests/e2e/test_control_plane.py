"""The SageMaker control plane on real pods: boto3's ``sagemaker`` client, pointed at the gateway,
creates a model, a config and an endpoint, waits with botocore's own waiter, invokes it with the
runtime client, updates it to a new config under traffic (no call fails), deletes it and waits
for it to be gone. Nothing here is a manifest: the API writes the sageport.io objects."""

from __future__ import annotations

import time
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest

from sageport_dev import stack
from sageport_dev.processes import eventually
from tests.e2e.conftest import Deployed
from tests.e2e.test_updates import IRIS_ROW, Traffic

pytestmark = pytest.mark.timeout(600)

WAIT = {"Delay": 2, "MaxAttempts": 150}


def _sagemaker(deployed: Deployed, key: stack.AccessKey) -> Any:
    return boto3.client(
        "sagemaker",
        endpoint_url=deployed.gateway_url,
        region_name=stack.REGION,
        aws_access_key_id=key.access_key_id,
        aws_secret_access_key=key.secret_access_key,
    )


def _config(sagemaker: Any, name: str, variant: str) -> None:
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": variant,
                "ModelName": "IrisModel",
                "InstanceType": "local",
                "InitialInstanceCount": 1,
            }
        ],
    )


def test_boto3_creates_waits_invokes_updates_and_deletes_an_endpoint(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey]
) -> None:
    ns, key = namespace
    sagemaker = _sagemaker(deployed, key)
    started = time.monotonic()
    sagemaker.create_model(
        ModelName="IrisModel",
        PrimaryContainer={"ModelDataUrl": "s3://sageport-models/iris/model.tar.gz"},
        ExecutionRoleArn="arn:aws:iam::123456789012:role/sageport",
    )
    _config(sagemaker, "IrisConfigV1", "Blue")
    arn = sagemaker.create_endpoint(EndpointName="IrisApi", EndpointConfigName="IrisConfigV1")["EndpointArn"]
    assert arn.endswith(":endpoint/irisapi")
    sagemaker.get_waiter("endpoint_in_service").wait(EndpointName="IrisApi", WaiterConfig=WAIT)
    in_service = time.monotonic() - started
    described = sagemaker.describe_endpoint(EndpointName="IrisApi")
    assert (described["EndpointStatus"], described["EndpointConfigName"]) == ("InService", "IrisConfigV1")
    runtime = stack.runtime_client(deployed.gateway_url, key, retries=1)
    answer = runtime.invoke_endpoint(EndpointName="IrisApi", ContentType="text/csv", Body=IRIS_ROW)
    assert answer["InvokedProductionVariant"] == "Blue"
    assert answer["Body"].read().decode().strip() == "[0]"

    # Tags and in-place weights on the real endpoint, as the key's own identity.
    sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": "team", "Value": "iris"}])
    assert sagemaker.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "iris"}]
    sagemaker.update_endpoint_weights_and_capacities(
        EndpointName="IrisApi", DesiredWeightsAndCapacities=[{"VariantName": "Blue", "DesiredWeight": 2.0}]
    )
    assert sagemaker.describe_endpoint(EndpointName="IrisApi")["EndpointStatus"] == "Updating"
    sagemaker.get_waiter("endpoint_in_service").wait(EndpointName="IrisApi", WaiterConfig=WAIT)
    (blue,) = sagemaker.describe_endpoint(EndpointName="IrisApi")["ProductionVariants"]
    assert blue["DesiredWeight"] == 2.0

    _config(sagemaker, "IrisConfigV2", "Green")
    with Traffic(runtime, "IrisApi", csv_row=IRIS_ROW) as traffic:
        sagemaker.update_endpoint(EndpointName="IrisApi", EndpointConfigName="IrisConfigV2")
        # Updating at once, as in SageMaker, or the waiter below would end before the update.
        assert sagemaker.describe_endpoint(EndpointName="IrisApi")["EndpointStatus"] == "Updating"
        sagemaker.get_waiter("endpoint_in_service").wait(EndpointName="IrisApi", WaiterConfig=WAIT)
        time.sleep(3)
    traffic.assert_none_failed()
    assert sagemaker.describe_endpoint(EndpointName="IrisApi")["EndpointConfigName"] == "IrisConfigV2"
    assert traffic.answered["Green"] > 0, traffic.answered

    sagemaker.delete_endpoint(EndpointName="IrisApi")
    sagemaker.get_waiter("endpoint_deleted").wait(EndpointName="IrisApi", WaiterConfig=WAIT)
    eventually(lambda: not deployed.kubectl("get", "deployments", "-n", ns, "-o", "name").strip(), 60,
               what="the Deployments garbage-collected")  # fmt: skip
    print(f"control plane: create_endpoint to endpoint_in_service {in_service:.1f} s")
