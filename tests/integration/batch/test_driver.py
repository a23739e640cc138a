"""The batch driver end to end: a real S3 server (versitygw), the real model server process with an
sklearn model, and ``python -m sageport.batch run`` as the job pod runs it."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.integration.server.conftest import REPO, Server, Servers
from tests.support.s3 import S3, versitygw

BUCKET = "batch"
# Three objects, one in a sub-folder; a sibling of the prefix that is not under it.
INPUTS = {
    "in/a.csv": b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n",
    "in/b.csv": b"5.9,3.0,4.2,1.5\n4.9,3.0,1.4,0.2\n6.3,3.3,6.0,2.5\n",
    "in/sub/c.csv": b"5.8,2.7,5.1,1.9",  # no final newline
}


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3]:
    with versitygw(tmp_path_factory.mktemp("s3")) as server:
        client = server.client()
        client.create_bucket(Bucket=BUCKET)
        for key, body in INPUTS.items():
            client.put_object(Bucket=BUCKET, Key=key, Body=body)
        client.put_object(Bucket=BUCKET, Key="inside-not/x.csv", Body=b"1,2\n")
        yield server


@pytest.fixture(scope="module")
def model_server(tmp_path_factory: pytest.TempPathFactory, sklearn_dir: Path) -> Iterator[Server]:
    servers = Servers(tmp_path_factory.mktemp("logs"))
    try:
        yield servers("serve", "--model-dir", str(sklearn_dir))
    finally:
        servers.stop_all()


def spec(prefix: str, output: str, instances: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "modelName": "iris",
        "transformInput": {
            "dataSource": {"s3DataSource": {"s3DataType": "S3Prefix", "s3URI": f"s3://{BUCKET}/{prefix}"}},
            "contentType": "text/csv",
            "splitType": "Line",
            **extra.pop("transformInput", {}),
        },
        "transformOutput": {
            "s3OutputPath": f"s3://{BUCKET}/{output}",
            "accept": "text/csv",
            "assembleWith": "Line",
        },
        "transformResources": {"instanceType": "ml.m5.large", "instanceCount": instances},
        "batchStrategy": "MultiRecord",
        "maxConcurrentTransforms": 2,
        **extra,
    }


def run_driver(
    s3: S3,
    server: Server,
    job: dict[str, Any],
    tmp_path: Path,
    index: int = 0,
    env: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any], str]:
    spec_file = tmp_path / f"spec-{index}.json"
    spec_file.write_text(json.dumps(job))
    termination = tmp_path / f"termination-{index}"
    termination.touch()  # as Kubernetes mounts it
    result = subprocess.run(
        [
            *(sys.executable, "-m", "sageport.batch", "run", "--spec-file", str(spec_file)),
            *("--index", str(index), "--model-url", server.base, "--termination-log", str(termination)),
        ],
        env={
            **os.environ,
            **s3.env(),
            "PYTHONPATH": os.pathsep.join([str(REPO / "runtime"), str(REPO / "operator")]),
            **(env or {}),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert json.loads(termination.read_text()) == report
    return result.returncode, report, result.stderr


def predictions(model: Any, rows: bytes) -> bytes:
    features = np.loadtxt(io.BytesIO(rows), delimiter=",", ndmin=2)
    return b"".join(b"%d\n" % value for value in model.predict(features))


def outputs(s3: S3, prefix: str) -> dict[str, bytes]:
    client = s3.client()
    listing = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {item["Key"]: client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read() for item in listing}


def test_line_multi_record_gives_one_prediction_per_line_in_order(
    s3: S3, model_server: Server, sklearn_model: Any, tmp_path: Path
) -> None:
    code, report, log = run_driver(s3, model_server, spec("in/", "out1"), tmp_path)
    assert code == 0, log
    assert report["transformJobStatus"] == "Completed"
    assert (report["objects"], report["records"]) == (3, 6)
    assert outputs(s3, "out1/") == {
        "out1/a.csv.out": predictions(sklearn_model, INPUTS["in/a.csv"]),
        "out1/b.csv.out": predictions(sklearn_model, INPUTS["in/b.csv"]),
        "out1/sub/c.csv.out": predictions(sklearn_model, INPUTS["in/sub/c.csv"]),
    }
    assert "MaxConcurrentTransforms=2, MaxPayloadInMB=6, BatchStrategy=MultiRecord" in log


def test_gzip_objects_give_uncompressed_csv_gz_out(
    s3: S3, model_server: Server, sklearn_model: Any, tmp_path: Path
) -> None:
    s3.client().put_object(Bucket=BUCKET, Key="gz/x.csv.gz", Body=gzip.compress(INPUTS["in/b.csv"]))
    job = spec("gz/", "out-gz", transformInput={"compressionType": "Gzip"}, batchStrategy="SingleRecord")
    code, _, log = run_driver(s3, model_server, job, tmp_path)
    assert code == 0, log
    assert outputs(s3, "out-gz/") == {"out-gz/x.csv.gz.out": predictions(sklearn_model, INPUTS["in/b.csv"])}


def test_join_with_filters(s3: S3, model_server: Server, sklearn_model: Any, tmp_path: Path) -> None:
    rows = [b"id7,5.1,3.5,1.4,0.2", b"id8,6.3,3.3,6.0,2.5"]
    s3.client().put_object(Bucket=BUCKET, Key="ids/rows.csv", Body=b"\n".join(rows) + b"\n")
    job = spec(
        "ids/",
        "out-join",
        dataProcessing={"inputFilter": "$[1:]", "joinSource": "Input", "outputFilter": "$[0,-1]"},
    )
    code, _, log = run_driver(s3, model_server, job, tmp_path)
    assert code == 0, log
    expected = predictions(sklearn_model, b"5.1,3.5,1.4,0.2\n6.3,3.3,6.0,2.5\n").split()
    assert outputs(s3, "out-join/")["out-join/rows.csv.out"] == b"id7,%s\nid8,%s\n" % tuple(expected)


def test_a_rejected_record_fails_the_job_naming_the_object_and_keeps_the_others(
    s3: S3, model_server: Server, tmp_path: Path
) -> None:
    client = s3.client()
    client.put_object(Bucket=BUCKET, Key="mixed/good.csv", Body=INPUTS["in/a.csv"])
    client.put_object(Bucket=BUCKET, Key="mixed/bad.csv", Body=b"5.1,3.5,1.4,0.2\n1,2\n")
    job = spec(
        "mixed/", "out-mixed", modelClientConfig={"invocationsMaxRetries": 0}, batchStrategy="SingleRecord"
    )
    code, report, _ = run_driver(s3, model_server, job, tmp_path)
    assert code == 1
    assert report["transformJobStatus"] == "Failed"
    assert report["failureReason"].startswith(f"s3://{BUCKET}/mixed/bad.csv: ClientError: 500")
    assert report["failedObjects"] == [f"s3://{BUCKET}/mixed/bad.csv"]
    assert set(outputs(s3, "out-mixed/")) == {"out-mixed/good.csv.out"}  # nothing partial for bad.csv


def test_two_workers_share_the_objects(s3: S3, model_server: Server, tmp_path: Path) -> None:
    shares = []
    for index in range(2):
        code, report, log = run_driver(s3, model_server, spec("in/", "out2", instances=2), tmp_path, index)
        assert code == 0, log
        shares.append(report["objects"])
    assert sorted(shares) == [1, 2]
    assert set(outputs(s3, "out2/")) == {"out2/a.csv.out", "out2/b.csv.out", "out2/sub/c.csv.out"}


def test_an_empty_prefix_fails_with_sagemakers_message(s3: S3, model_server: Server, tmp_path: Path) -> None:
    code, report, _ = run_driver(s3, model_server, spec("nothing/", "out-none"), tmp_path)
    assert code == 1
    assert report["failureReason"].startswith(
        f'ClientError: No S3 objects found under S3 URL "s3://{BUCKET}/nothing/"'
    )


def test_a_rerun_after_a_dead_pod_redoes_only_the_objects_without_this_jobs_output(
    s3: S3, model_server: Server, sklearn_model: Any, tmp_path: Path
) -> None:
    client = s3.client()
    job = spec("in/", "out-rerun")
    first = {"SAGEPORT_TRANSFORM_JOB_UID": "uid-1", "SAGEPORT_TRANSFORM_RETRY": "0"}
    code, report, log = run_driver(s3, model_server, job, tmp_path, env=first)
    assert code == 0, log
    head = client.head_object(Bucket=BUCKET, Key="out-rerun/a.csv.out")
    assert head["Metadata"] == {"sageport-transform-job": "uid-1"}
    # As if the pod died before b.csv's output was written, and a.csv's path held an older job's.
    client.delete_object(Bucket=BUCKET, Key="out-rerun/b.csv.out")
    client.put_object(
        Bucket=BUCKET,
        Key="out-rerun/a.csv.out",
        Body=b"stale\n",
        Metadata={"sageport-transform-job": "uid-0"},
    )
    again = {"SAGEPORT_TRANSFORM_JOB_UID": "uid-1", "SAGEPORT_TRANSFORM_RETRY": "1"}
    code, report, log = run_driver(s3, model_server, job, tmp_path, env=again)
    assert code == 0, log
    assert report["skippedObjects"] == 1  # sub/c.csv, this job's
    assert report["records"] == 5  # a.csv (2) and b.csv (3) transformed again
    assert outputs(s3, "out-rerun/") == {
        "out-rerun/a.csv.out": predictions(sklearn_model, INPUTS["in/a.csv"]),
        "out-rerun/b.csv.out": predictions(sklearn_model, INPUTS["in/b.csv"]),
        "out-rerun/sub/c.csv.out": predictions(sklearn_model, INPUTS["in/sub/c.csv"]),
    }
