"""Deploy, predict and delete with the SageMaker Python SDK, as SageMaker's documentation teaches,
against sageport. Nothing here names sageport: the environment does (``eval "$(make -s up)"``
exports AWS_ENDPOINT_URL_SAGEMAKER, AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME, the keys and the region).

    eval "$(make -s up)"
    aws s3 cp model.tar.gz s3://$SAGEPORT_BUCKET/iris/model.tar.gz   # a scikit-learn model.joblib
    .venv/bin/python examples/sagemaker-sdk/deploy.py --endpoint-name iris-sdk

It prints one JSON line: what each step answered.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import boto3
import sagemaker
from sagemaker import image_uris
from sagemaker.deserializers import JSONDeserializer
from sagemaker.model import Model
from sagemaker.predictor import Predictor
from sagemaker.serializers import CSVSerializer

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    bucket = os.environ.get("SAGEPORT_BUCKET", "sageport-models")
    parser.add_argument("--model-data", default=f"s3://{bucket}/iris/model.tar.gz")
    parser.add_argument("--endpoint-name", default="iris-sdk")
    # `local` is the local stack's instance type on its real node (see the README: the SDK takes
    # "local" for its own local mode only when the Model has no sagemaker_session).
    parser.add_argument("--instance-type", default="local")
    parser.add_argument("--keep", action="store_true", help="leave the endpoint running")
    args = parser.parse_args()

    session = sagemaker.Session(boto_session=boto3.Session())
    image = image_uris.retrieve("sklearn", session.boto_region_name, version="1.2-1")
    model = Model(
        image_uri=image,
        model_data=args.model_data,
        role="arn:aws:iam::000000000000:role/sageport",
        predictor_cls=Predictor,
        sagemaker_session=session,
    )
    started = time.monotonic()
    predictor = model.deploy(
        initial_instance_count=1,
        instance_type=args.instance_type,
        endpoint_name=args.endpoint_name,
        serializer=CSVSerializer(),
        deserializer=JSONDeserializer(),
    )
    print()  # ends the line of the SDK's progress marks ("-----!")
    deployed_seconds = time.monotonic() - started
    report: dict[str, Any] = {
        "image": image,
        "model": model.name,
        "deploy_seconds": round(deployed_seconds, 1),
        "predict": predictor.predict(ROWS),
    }
    report["sagemaker_core"] = sagemaker_core_calls(args.endpoint_name, session)
    described = session.sagemaker_client.describe_endpoint(EndpointName=args.endpoint_name)
    report["deployed_images"] = described["ProductionVariants"][0].get("DeployedImages")
    if not args.keep:
        predictor.delete_endpoint()
        model.delete_model()
        report["deleted"] = True
    print(json.dumps(report, default=str))


def sagemaker_core_calls(endpoint_name: str, session: sagemaker.Session) -> dict[str, Any]:
    """The same endpoint through sagemaker-core's resource classes."""
    from sagemaker_core.resources import Endpoint

    endpoint = Endpoint.get(endpoint_name, session=session.boto_session, region=session.boto_region_name)
    endpoint.wait_for_status("InService", poll=2, timeout=120)
    answer = endpoint.invoke(body="5.1,3.5,1.4,0.2", content_type="text/csv", accept="application/json")
    body = answer.body.read() if hasattr(answer.body, "read") else answer.body
    return {"status": endpoint.endpoint_status, "invoke": json.loads(body)}


if __name__ == "__main__":
    main()
