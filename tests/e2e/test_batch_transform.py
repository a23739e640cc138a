"""Batch transform on the real node: TransformJobs (examples/batch-transform) run the iris Model's
own container and the batch driver in indexed Job pods, over objects on the stack's S3 server.

What a user sees: outputs in S3 (one prediction per input line, in order), transformJobStatus and
failureReason, kubectl wait, a stop by annotation or by delete.
"""

from __future__ import annotations

import copy
import gzip
import io
import json
import os
import signal
import tarfile
import time
import uuid
from typing import Any

import joblib  # type: ignore[import-untyped]
import numpy as np
import pytest
import yaml

from sageport_dev import stack
from sageport_dev.processes import eventually
from tests.e2e.conftest import Deployed
from tests.support.manifests import EXAMPLES

pytestmark = pytest.mark.timeout(600)

BUCKET = "sageport-batch"
KIND = "transformjobs.sageport.io"
# Three objects, one in a sub-folder; c.csv without a final newline.
INPUTS = {
    "a.csv": b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n",
    "b.csv": b"5.9,3.0,4.2,1.5\n4.9,3.0,1.4,0.2\n6.3,3.3,6.0,2.5\n",
    "sub/c.csv": b"5.8,2.7,5.1,1.9",
}


def _example() -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all((EXAMPLES / "batch-transform" / "all.yaml").read_text()) if d]
    for doc in docs:
        if doc["kind"] == "TransformJob":
            doc["spec"]["transformResources"]["instanceType"] = "local"
    return docs


def _job(docs: list[dict[str, Any]], name: str, prefix: str, **spec: Any) -> dict[str, Any]:
    """The example's TransformJob under another name, reading s3://BUCKET/<prefix>/in/ and
    writing s3://BUCKET/<prefix>/out/, with ``spec`` merged over its spec (one level deep)."""
    job = copy.deepcopy(next(d for d in docs if d["kind"] == "TransformJob"))
    job["metadata"]["name"] = name
    job["spec"]["transformJobName"] = name
    job["spec"]["transformInput"]["dataSource"]["s3DataSource"]["s3URI"] = f"s3://{BUCKET}/{prefix}/in/"
    job["spec"]["transformOutput"]["s3OutputPath"] = f"s3://{BUCKET}/{prefix}/out/"
    for key, value in spec.items():
        if isinstance(value, dict) and isinstance(job["spec"].get(key), dict):
            job["spec"][key].update(value)
        else:
            job["spec"][key] = value
    return job


@pytest.fixture(scope="module")
def iris(deployed: Deployed) -> Any:
    """The stack's iris model, as the model container loads it: expected predictions come from it."""
    body = deployed.s3.client().get_object(Bucket="sageport-models", Key="iris/model.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        member = tar.extractfile("model.joblib")
        assert member is not None
        return joblib.load(io.BytesIO(member.read()))


@pytest.fixture
def prefix(deployed: Deployed) -> str:
    deployed.s3.ensure_bucket(BUCKET)
    return uuid.uuid4().hex[:10]


def _predictions(model: Any, rows: bytes) -> bytes:
    features = np.loadtxt(io.BytesIO(rows), delimiter=",", ndmin=2)
    return b"".join(b"%d\n" % value for value in model.predict(features))


def _put(deployed: Deployed, prefix: str, objects: dict[str, bytes]) -> None:
    for key, body in objects.items():
        deployed.s3.put(BUCKET, f"{prefix}/in/{key}", body)


def _outputs(deployed: Deployed, prefix: str) -> dict[str, bytes]:
    client = deployed.s3.client()
    listing = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/out/").get("Contents", [])
    return {
        item["Key"].removeprefix(f"{prefix}/out/"): client.get_object(Bucket=BUCKET, Key=item["Key"])[
            "Body"
        ].read()
        for item in listing
    }


def _status(deployed: Deployed, namespace: str, name: str) -> dict[str, Any]:
    return ((deployed.get(KIND, name, namespace) or {}).get("status")) or {}


def _wait_for(
    deployed: Deployed, namespace: str, name: str, *states: str, timeout: float = 240
) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        status = _status(deployed, namespace, name)
        return status if status.get("transformJobStatus") in states else None

    try:
        return eventually(
            reached, timeout=timeout, interval=1, what=f"TransformJob {name} {'/'.join(states)}"
        )
    except AssertionError as error:
        pods = deployed.kubectl("get", "pods", "-n", namespace, "-o", "wide", check=False)
        raise AssertionError(
            f"{error}\nstatus: {_status(deployed, namespace, name)}\npods:\n{pods}"
        ) from None


def _pods(deployed: Deployed, namespace: str, name: str) -> list[dict[str, Any]]:
    out = deployed.kubectl(
        "get", "pods", "-n", namespace, "-l", f"sageport.io/transform-job={name}", "-o", "json"
    )
    return list(json.loads(out)["items"])


def _driver_results(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    results = []
    for pod in pods:
        for container in pod["status"].get("containerStatuses") or []:
            terminated = container.get("state", {}).get("terminated")
            if container["name"] == "driver" and terminated:
                results.append(json.loads(terminated["message"]))
    return results


def test_the_example_transforms_three_objects_one_prediction_per_line_in_order(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey], iris: Any
) -> None:
    ns, _ = namespace
    docs = _example()
    job = next(d for d in docs if d["kind"] == "TransformJob")
    assert (
        job["spec"]["transformInput"]["dataSource"]["s3DataSource"]["s3URI"] == f"s3://{BUCKET}/iris/input/"
    )
    prefix = "iris"
    client = deployed.s3.client()
    deployed.s3.ensure_bucket(BUCKET)
    for listing in client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=listing["Key"])  # a previous run's
    for key, body in INPUTS.items():
        deployed.s3.put(BUCKET, f"{prefix}/input/{key}", body)

    stack.apply_objects(deployed.kubeconfig, ns, docs)
    started = time.monotonic()
    deployed.kubectl("wait", "-n", ns, "--for=condition=Succeeded", "--timeout=240s", f"{KIND}/iris-batch")
    elapsed = time.monotonic() - started

    status = _status(deployed, ns, "iris-batch")
    assert status["transformJobStatus"] == "Completed", status
    assert status["transformStartTime"] <= status["transformEndTime"]
    listing = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/output/").get("Contents", [])
    outputs = {
        item["Key"].removeprefix(f"{prefix}/output/"): client.get_object(Bucket=BUCKET, Key=item["Key"])[
            "Body"
        ].read()
        for item in listing
    }
    assert outputs == {f"{key}.out": _predictions(iris, body) for key, body in INPUTS.items()}
    (pod,) = _pods(deployed, ns, "iris-batch")
    assert pod["metadata"]["namespace"] == ns
    assert pod["spec"]["nodeName"] == "sageport-local"
    assert pod["status"]["phase"] == "Succeeded"
    (result,) = _driver_results([pod])
    assert (result["objects"], result["records"]) == (3, 6)
    printed = deployed.kubectl("get", "-n", ns, "sptj", "iris-batch")
    assert "Completed" in printed
    print(f"example job: Completed {elapsed:.1f} s after apply")


def test_gzip_objects_give_uncompressed_outputs(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey], iris: Any, prefix: str
) -> None:
    ns, _ = namespace
    _put(
        deployed,
        prefix,
        {"x.csv.gz": gzip.compress(INPUTS["b.csv"]), "y.csv.gz": gzip.compress(INPUTS["a.csv"])},
    )
    docs = _example()
    job = _job(docs, "gzip", prefix, transformInput={"compressionType": "Gzip"})
    stack.apply_objects(deployed.kubeconfig, ns, [*[d for d in docs if d["kind"] == "Model"], job])
    assert _wait_for(deployed, ns, "gzip", "Completed", "Failed")["transformJobStatus"] == "Completed"
    assert _outputs(deployed, prefix) == {
        "x.csv.gz.out": _predictions(iris, INPUTS["b.csv"]),
        "y.csv.gz.out": _predictions(iris, INPUTS["a.csv"]),
    }


def test_join_source_input_with_filters_gives_sagemakers_joined_rows(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey], iris: Any, prefix: str
) -> None:
    ns, _ = namespace
    _put(deployed, prefix, {"rows.csv": b"id7,5.1,3.5,1.4,0.2\nid8,6.3,3.3,6.0,2.5\nid9,5.9,3.0,4.2,1.5\n"})
    docs = _example()
    job = _job(
        docs,
        "join",
        prefix,
        dataProcessing={"inputFilter": "$[1:]", "joinSource": "Input", "outputFilter": "$[0,-1]"},
    )
    stack.apply_objects(deployed.kubeconfig, ns, [*[d for d in docs if d["kind"] == "Model"], job])
    assert _wait_for(deployed, ns, "join", "Completed", "Failed")["transformJobStatus"] == "Completed"
    labels = _predictions(iris, b"5.1,3.5,1.4,0.2\n6.3,3.3,6.0,2.5\n5.9,3.0,4.2,1.5\n").split()
    assert _outputs(deployed, prefix) == {"rows.csv.out": b"id7,%s\nid8,%s\nid9,%s\n" % tuple(labels)}


def test_a_rejected_record_fails_the_job_naming_the_object_and_keeps_the_other_outputs(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey], iris: Any, prefix: str
) -> None:
    ns, _ = namespace
    _put(deployed, prefix, {"good.csv": INPUTS["a.csv"], "bad.csv": b"5.1,3.5,1.4,0.2\n1,2\n"})
    docs = _example()
    job = _job(
        docs, "rejected", prefix, batchStrategy="SingleRecord", modelClientConfig={"invocationsMaxRetries": 0}
    )
    stack.apply_objects(deployed.kubeconfig, ns, [*[d for d in docs if d["kind"] == "Model"], job])
    status = _wait_for(deployed, ns, "rejected", "Completed", "Failed")
    assert status["transformJobStatus"] == "Failed"
    assert status["failureReason"].startswith(f"s3://{BUCKET}/{prefix}/in/bad.csv: ClientError: 500"), status
    assert status["transformEndTime"]
    assert {c["type"]: c["status"] for c in status["conditions"]} == {"Ready": "False", "Succeeded": "False"}
    # The good object's output is kept; nothing, not even a part, of the bad one's.
    assert _outputs(deployed, prefix) == {"good.csv.out": _predictions(iris, INPUTS["a.csv"])}
    # The driver's verdict fails its instance at once: no second run of the same data.
    assert len(_pods(deployed, ns, "rejected")) == 1


def test_two_instances_share_the_objects(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey], iris: Any, prefix: str
) -> None:
    ns, _ = namespace
    _put(deployed, prefix, INPUTS)
    docs = _example()
    job = _job(docs, "two", prefix, transformResources={"instanceType": "local", "instanceCount": 2})
    stack.apply_objects(deployed.kubeconfig, ns, [*[d for d in docs if d["kind"] == "Model"], job])
    assert _wait_for(deployed, ns, "two", "Completed", "Failed")["transformJobStatus"] == "Completed"
    assert _outputs(deployed, prefix) == {
        f"{key}.out": _predictions(iris, body) for key, body in INPUTS.items()
    }
    pods = _pods(deployed, ns, "two")
    indexes = sorted(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] for p in pods)
    assert indexes == ["0", "1"]
    assert sorted(r["objects"] for r in _driver_results(pods)) == [1, 2]  # whole objects, spread by size


def _slow_job(deployed: Deployed, ns: str, name: str, prefix: str) -> None:
    """A job on the probe model that takes minutes: two instances, one with a quick object
    (written within seconds), the other with 400 records of 0.5 s each. Returns once the quick
    output is written."""
    slow = b"".join(b'{"id": %d, "sleep": 0.5}\n' % i for i in range(400))
    _put(deployed, prefix, {"quick.jsonl": b'{"id": "q"}\n', "slow.jsonl": slow})
    model = {
        "apiVersion": "sageport.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "probe"},
        "spec": {
            "modelName": "probe",
            "primaryContainer": {"modelDataURL": "s3://models/probe/model.tar.gz"},
        },
    }
    job = _job(
        _example(),
        name,
        prefix,
        modelName="probe",
        batchStrategy="SingleRecord",
        maxConcurrentTransforms=1,
        transformInput={"contentType": "application/json"},
        transformOutput={"accept": "application/json"},
        transformResources={"instanceType": "local", "instanceCount": 2},  # one object each
    )
    stack.apply_objects(deployed.kubeconfig, ns, [model, job])
    try:
        eventually(lambda: "quick.jsonl.out" in _outputs(deployed, prefix), 180, 1, what="the quick output")
    except AssertionError as error:
        pods = deployed.kubectl("get", "pods", "-n", ns, "-o", "wide", check=False)
        logs = deployed.kubectl(
            "logs", "-n", ns, "-l", f"sageport.io/transform-job={name}", "-c", "driver", check=False
        )
        raise AssertionError(
            f"{error}\nstatus: {_status(deployed, ns, name)}\npods:\n{pods}\n{logs[-3000:]}"
        ) from None


def test_a_stop_request_ends_in_stopped_and_keeps_the_outputs_written(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey], prefix: str
) -> None:
    ns, _ = namespace
    _slow_job(deployed, ns, "stopped", prefix)
    assert _status(deployed, ns, "stopped")["transformJobStatus"] == "InProgress"
    deployed.kubectl("annotate", "-n", ns, KIND, "stopped", "sageport.io/stop-requested=true")
    asked = time.monotonic()
    seen = {_wait_for(deployed, ns, "stopped", "Stopping", "Stopped", timeout=30)["transformJobStatus"]}
    status = _wait_for(deployed, ns, "stopped", "Stopped", timeout=60)
    took = time.monotonic() - asked
    assert status["transformEndTime"]
    assert {c["type"]: c["status"] for c in status["conditions"]} == {"Ready": "False", "Succeeded": "False"}
    # No pod runs any more (the quick instance's had ended Succeeded; the Job controller may
    # remove it with the suspension).
    assert [p for p in _pods(deployed, ns, "stopped") if p["status"]["phase"] in ("Pending", "Running")] == []
    outputs = _outputs(deployed, prefix)
    assert set(outputs) == {"quick.jsonl.out"}  # kept; the slow one was never partly written
    assert json.loads(outputs["quick.jsonl.out"])["id"] == "q"
    print(f"stop: {' then '.join(sorted(seen))}, Stopped {took:.1f} s after the annotation")


def test_deleting_a_running_job_takes_its_pods_at_once(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey], prefix: str
) -> None:
    ns, _ = namespace
    _slow_job(deployed, ns, "deleted", prefix)
    assert "Running" in [p["status"]["phase"] for p in _pods(deployed, ns, "deleted")]
    asked = time.monotonic()
    deployed.kubectl("delete", "-n", ns, KIND, "deleted", "--wait=true")
    eventually(lambda: _pods(deployed, ns, "deleted") == [], 60, 0.5, what="the job's pods gone")
    took = time.monotonic() - asked
    assert (
        deployed.kubectl("get", "jobs", "-n", ns, "-l", "sageport.io/transform-job=deleted", "-o", "name")
        == ""
    )
    assert "slow.jsonl.out" not in _outputs(deployed, prefix)
    print(f"delete: pods gone {took:.1f} s after kubectl delete")


def test_a_pod_killed_mid_object_is_replaced_and_redoes_only_what_was_not_written(
    deployed: Deployed, namespace: tuple[str, stack.AccessKey], prefix: str
) -> None:
    ns, _ = namespace
    # One request per object, all three in flight at once: the quick ones are written at once,
    # the slow one's record takes 25 s.
    slow = b'{"id": "slow", "sleep": 25}\n'
    _put(deployed, prefix, {"q1.jsonl": b'{"id": "q1"}\n', "q2.jsonl": b'{"id": "q2"}\n', "slow.jsonl": slow})
    model = {
        "apiVersion": "sageport.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "probe"},
        "spec": {
            "modelName": "probe",
            "primaryContainer": {"modelDataURL": "s3://models/probe/model.tar.gz"},
        },
    }
    job = _job(
        _example(),
        "killed",
        prefix,
        modelName="probe",
        batchStrategy="SingleRecord",
        maxConcurrentTransforms=3,
        transformInput={"contentType": "application/json"},
        transformOutput={"accept": "application/json"},
    )
    stack.apply_objects(deployed.kubeconfig, ns, [model, job])
    eventually(lambda: "q1.jsonl.out" in _outputs(deployed, prefix), 180, 0.5, what="a quick output")
    written = set(_outputs(deployed, prefix))
    assert "slow.jsonl.out" not in written  # the slow object is mid-way
    (pod,) = _pods(deployed, ns, "killed")
    driver = next(c for c in pod["status"]["containerStatuses"] if c["name"] == "driver")
    container_id = driver["containerID"].split("://", 1)[1]
    tasks = dict(line.split()[:2] for line in deployed.ctr("tasks", "list").splitlines()[1:])
    os.kill(int(tasks[container_id]), signal.SIGKILL)  # as an out-of-memory kill would

    status = _wait_for(deployed, ns, "killed", "Completed", "Failed")
    assert status["transformJobStatus"] == "Completed", status
    outputs = _outputs(deployed, prefix)
    assert set(outputs) == {"q1.jsonl.out", "q2.jsonl.out", "slow.jsonl.out"}
    assert json.loads(outputs["slow.jsonl.out"])["id"] == "slow"
    pods = sorted(_pods(deployed, ns, "killed"), key=lambda p: p["metadata"]["creationTimestamp"])
    assert [p["status"]["phase"] for p in pods] == ["Failed", "Succeeded"]
    (rerun,) = _driver_results(pods[1:])
    # The rerun skipped what the killed pod had written, and transformed only the rest.
    assert rerun["skippedObjects"] == len(written)
    assert rerun["records"] == (2 - len(written)) + 1
