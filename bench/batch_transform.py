"""Batch transform throughput on the real node: records/s through a one-instance TransformJob
against a plain client calling the same model server with the same batches and concurrency.

Measured, on ``make up``'s stack (started if it is not running, and left running): 100,000 CSV
lines (iris rows) in 20 objects of 5,000 lines (``--objects``) under one prefix, ``examples/batch-transform``'s job
on the ``local`` instance type with one instance, ``Line`` + ``MultiRecord`` at 1 MiB (one request
per object), 4 requests in flight. The job's figure is the driver's own ``transformSeconds`` (from
its termination message: the first object read to the last output written, S3 reads, splitting,
model calls, assembly and S3 writes included; not the pod start or the wait for ``/ping``).

Baseline, in the same run: a plain pod made from the job's own pod template (the same model
fetch, the same model container as a sidecar, the same resources and node), whose main container
is a client script instead of the driver: it reads the same objects, cuts them into the same
request bodies (``sageport.batch``'s own splitting, before the clock starts) and sends them to
``/invocations`` with the same concurrency over keep-alive connections, timed from the first
request to the last response. The ratio job/baseline is what the driver's S3 I/O and bookkeeping
cost; the target is at least 0.9.

    python -m bench.batch_transform [--rounds N] [--objects N]

Needs root (the real node).
"""

from __future__ import annotations

import argparse
import copy
import json
import secrets
import statistics
import time
from typing import Any

from bench._stack import iris_stack
from sageport_dev import stack
from sageport_dev.processes import eventually

BUCKET = "sageport-batch"
LINES = 100_000
OBJECTS = 20
CONCURRENCY = 4
ROWS = (b"5.1,3.5,1.4,0.2\n", b"6.7,3.0,5.2,2.3\n", b"5.9,3.0,4.2,1.5\n", b"6.3,3.3,6.0,2.5\n")

CLIENT = r"""
import http.client, json, os, threading, time, urllib.request
from concurrent.futures import ThreadPoolExecutor
from sageport.api.v1alpha1 import TransformJobSpec
from sageport.batch.objects import parse_s3_uri
from sageport.batch.params import resolve
from sageport.batch.pipeline import prepare
from sageport.storage.s3 import s3_client

spec = TransformJobSpec.model_validate_json(os.environ["SAGEPORT_TRANSFORM_JOB"])
params = resolve(spec)
s3 = s3_client()
bucket, prefix = parse_s3_uri(spec.transform_input.data_source.s3_data_source.s3_uri)
bodies, records = [], 0
for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]:
    prepared = prepare(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read(), params)
    bodies += [batch.body for batch in prepared.batches]
    records += prepared.count
while True:
    try:
        urllib.request.urlopen("http://127.0.0.1:8080/ping", timeout=2)
        break
    except OSError:
        time.sleep(0.2)
local = threading.local()
headers = {"Content-Type": "text/csv", "Accept": "text/csv"}

def post(body):
    if getattr(local, "connection", None) is None:
        local.connection = http.client.HTTPConnection("127.0.0.1", 8080, timeout=600)
    local.connection.request("POST", "/invocations", body, headers)
    response = local.connection.getresponse()
    answer = response.read()
    assert response.status == 200, answer[:300]
    return answer

started = time.monotonic()
with ThreadPoolExecutor(params.max_concurrent_transforms) as pool:
    list(pool.map(post, bodies))
result = json.dumps({"records": records, "requests": len(bodies), "seconds": time.monotonic() - started})
open("/dev/termination-log", "w").write(result)
print(result)
"""


def _kubectl_json(kubeconfig: Any, *args: str) -> dict[str, Any]:
    return dict(json.loads(stack.kubectl(kubeconfig, *args, "-o", "json")))


def _terminated(pod: dict[str, Any], container: str) -> dict[str, Any] | None:
    for status in pod.get("status", {}).get("containerStatuses") or []:
        if status["name"] == container and status.get("state", {}).get("terminated"):
            return dict(status["state"]["terminated"])
    return None


def _transform_job(prefix: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "sageport.io/v1alpha1",
        "kind": "TransformJob",
        "metadata": {"name": name},
        "spec": {
            "modelName": "bench-iris",
            "transformInput": {
                "dataSource": {
                    "s3DataSource": {"s3DataType": "S3Prefix", "s3URI": f"s3://{BUCKET}/{prefix}/in/"}
                },
                "contentType": "text/csv",
                "splitType": "Line",
            },
            "batchStrategy": "MultiRecord",
            "maxPayloadInMB": 1,
            "maxConcurrentTransforms": CONCURRENCY,
            "transformOutput": {
                "s3OutputPath": f"s3://{BUCKET}/{prefix}/out-{name}/",
                "accept": "text/csv",
                "assembleWith": "Line",
            },
            "transformResources": {"instanceType": "local", "instanceCount": 1},
        },
    }


def _run_job(
    kubeconfig: Any, namespace: str, prefix: str, name: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The job's driver result and its Job's pod template."""
    stack.apply_objects(kubeconfig, namespace, [_transform_job(prefix, name)])

    def ended() -> dict[str, Any] | None:
        found = _kubectl_json(kubeconfig, "get", "transformjobs.sageport.io", name, "-n", namespace)
        state = found.get("status", {}).get("transformJobStatus")
        return found if state in ("Completed", "Failed", "Stopped") else None

    job = eventually(ended, 600, 1, what=f"TransformJob {name} to end")
    if job["status"]["transformJobStatus"] != "Completed":
        raise SystemExit(f"TransformJob {name}: {job['status']}")
    pods = _kubectl_json(
        kubeconfig, "get", "pods", "-n", namespace, "-l", f"sageport.io/transform-job={name}"
    )
    (pod,) = pods["items"]
    terminated = _terminated(pod, "driver")
    assert terminated is not None
    template = _kubectl_json(kubeconfig, "get", "job", job["status"]["jobName"], "-n", namespace)["spec"][
        "template"
    ]
    return json.loads(terminated["message"]), template


def _run_client(kubeconfig: Any, namespace: str, template: dict[str, Any], name: str) -> dict[str, Any]:
    spec = copy.deepcopy(template["spec"])
    (driver,) = spec["containers"]
    driver.update(name="client", command=["python", "-c", CLIENT])
    driver["env"] = [e for e in driver["env"] if "valueFrom" not in e]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}
    stack.apply_objects(kubeconfig, namespace, [pod])

    def ended() -> dict[str, Any] | None:
        found = _kubectl_json(kubeconfig, "get", "pod", name, "-n", namespace)
        return found if found.get("status", {}).get("phase") in ("Succeeded", "Failed") else None

    found = eventually(ended, 600, 1, what=f"client pod {name} to end")
    terminated = _terminated(found, "client")
    if found["status"]["phase"] != "Succeeded" or terminated is None:
        logs = stack.kubectl(kubeconfig, "logs", "-n", namespace, name, "-c", "client", check=False)
        raise SystemExit(f"client pod {name} failed:\n{logs[-3000:]}")
    return dict(json.loads(terminated["message"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--rounds", type=int, default=3, help="job/client pairs, alternated (the median is kept)"
    )
    parser.add_argument("--objects", type=int, default=OBJECTS, help="objects the 100,000 lines are cut into")
    args = parser.parse_args()
    deployed = iris_stack()
    kubeconfig = deployed.kubeconfig
    namespace = f"bench-batch-{secrets.token_hex(3)}"
    stack.prepare_namespace(kubeconfig, namespace, deployed.s3)
    model = {
        "apiVersion": "sageport.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "bench-iris"},
        "spec": {
            "modelName": "bench-iris",
            "primaryContainer": {"modelDataURL": "s3://sageport-models/iris/model.tar.gz"},
        },
    }
    stack.apply_objects(kubeconfig, namespace, [model])
    prefix = f"bench-{secrets.token_hex(4)}"
    objects = args.objects
    per_object = LINES // objects
    body = b"".join(ROWS[i % len(ROWS)] for i in range(per_object))
    for i in range(objects):
        deployed.s3.put(BUCKET, f"{prefix}/in/part-{i:02d}.csv", body)
    job_rates, client_rates = [], []
    try:
        for round_ in range(args.rounds):
            started = time.monotonic()
            result, template = _run_job(kubeconfig, namespace, prefix, f"job-{round_}")
            assert result["records"] == LINES, result
            job_rates.append(result["records"] / result["transformSeconds"])
            print(
                f"round {round_}: job {result['records']} records in {result['transformSeconds']:.3f} s "
                f"({job_rates[-1]:,.0f} records/s; apply to Completed {time.monotonic() - started:.1f} s)",
                flush=True,
            )
            client = _run_client(kubeconfig, namespace, template, f"client-{round_}")
            assert client["records"] == LINES, client
            client_rates.append(client["records"] / client["seconds"])
            print(
                f"round {round_}: client {client['records']} records, {client['requests']} requests in "
                f"{client['seconds']:.3f} s ({client_rates[-1]:,.0f} records/s)",
                flush=True,
            )
    finally:
        stack.kubectl(kubeconfig, "delete", "namespace", namespace, "--wait=false", check=False)
    job_rate, client_rate = statistics.median(job_rates), statistics.median(client_rates)
    print(
        f"batch transform, {LINES:,} CSV lines in {objects} objects, 1 instance, MultiRecord 1 MiB, "
        f"{CONCURRENCY} in flight: job {job_rate:,.0f} records/s, client {client_rate:,.0f} records/s, "
        f"ratio x{job_rate / client_rate:.2f} (target >= 0.9)"
    )


if __name__ == "__main__":
    main()
