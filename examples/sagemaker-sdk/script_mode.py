"""A framework model in script mode with the SageMaker Python SDK: ``SKLearnModel`` with an
``entry_point``. The SDK packs ``code/`` as ``sourcedir.tar.gz`` into its default bucket and
deploys SageMaker's scikit-learn image; sageport runs its own model server for that image, fetches
the code into /opt/ml/code and calls ``code/inference.py``'s ``predict_fn``.

    eval "$(make -s up)"      # also points the SDK's default bucket at $SAGEPORT_BUCKET
    .venv/bin/python examples/sagemaker-sdk/script_mode.py --endpoint-name iris-script

It prints one JSON line: what each step answered.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import boto3
import sagemaker
from sagemaker.deserializers import JSONDeserializer
from sagemaker.serializers import CSVSerializer
from sagemaker.sklearn.model import SKLearnModel

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    bucket = os.environ.get("SAGEPORT_BUCKET", "sageport-models")
    parser.add_argument("--model-data", default=f"s3://{bucket}/iris/model.tar.gz")
    parser.add_argument("--endpoint-name", default="iris-script")
    parser.add_argument("--instance-type", default="local")
    parser.add_argument("--keep", action="store_true", help="leave the endpoint running")
    args = parser.parse_args()

    session = sagemaker.Session(boto_session=boto3.Session())
    model = SKLearnModel(
        model_data=args.model_data,
        role="arn:aws:iam::000000000000:role/sageport",
        entry_point="inference.py",
        source_dir=str(Path(__file__).parent / "code"),
        framework_version="1.2-1",
        sagemaker_session=session,
    )
    predictor = model.deploy(
        initial_instance_count=1,
        instance_type=args.instance_type,
        endpoint_name=args.endpoint_name,
        serializer=CSVSerializer(),
        deserializer=JSONDeserializer(),
    )
    print()  # ends the line of the SDK's progress marks ("-----!")
    report = {
        "model": model.name,
        "environment": session.sagemaker_client.describe_model(ModelName=model.name)["PrimaryContainer"].get(
            "Environment"
        ),
        "predict": predictor.predict(ROWS),
    }
    if not args.keep:
        predictor.delete_endpoint()
        model.delete_model()
        report["deleted"] = True
    print(json.dumps(report))


if __name__ == "__main__":
    main()
