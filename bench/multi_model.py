"""Multi-model endpoints: routing's cache-hit ratio against the ideal, a warm call's added latency,
and a first call against downloading and loading the model by hand.

1. Routing (a simulation on the gateway's own routing code, no cluster): 10,000 models, a
   Zipf-distributed trace of 200,000 calls, 2 instances each holding 1,000 models in an LRU.
   The ideal is one LRU of 2,000 models on the same trace (the same memory, no split); random
   routing is printed for contrast. Target: routing reaches >= 90 % of the ideal hit ratio.
2. Warm call (``make up``'s stack, real node, boto3 through the gateway): the iris model behind a
   multi-model endpoint (TargetModel) against the same model on a single-model endpoint, rounds
   alternating. Target: added p50 <= 0.2 ms.
3. First call of a 50 MB model on an instance against boto3 downloading the same object from the
   same S3 server, unpacking it and loading it in this process.
4. The Zipf trace for real: 10,000 models under one prefix, 2 instances whose memory holds a
   share of them, 20,000 calls (Zipf 1.2) from 8 callers through the gateway: the instances' own
   cache-hit ratio (their ModelCacheHit counters) and the calls' p50/p99, against an LRU
   simulation of the same trace with as many models as the instances held at the end (the ideal).

    python -m bench.multi_model [--simulate-only]

Parts 2 and 3 need root (the real node); the stack is started if it is not running, and left.
"""

from __future__ import annotations

import json
import statistics
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from sageport.contract import RoutingStrategy
from sageport.gateway.routing import Instance, Variant, choose_model_instance

NAMESPACE = "bench-mme"
MODELS, CALLS, INSTANCES, PER_INSTANCE = 10_000, 200_000, 2, 1_000


class Lru:
    def __init__(self, capacity: int) -> None:
        self.capacity, self.entries = capacity, OrderedDict[str, None]()

    def hit(self, key: str) -> bool:
        if key in self.entries:
            self.entries.move_to_end(key)
            return True
        self.entries[key] = None
        if len(self.entries) > self.capacity:
            self.entries.popitem(last=False)
        return False


def simulate() -> None:
    ranks = np.random.default_rng(7).zipf(1.2, size=CALLS * 3)
    trace = [f"models/m{r - 1}.tar.gz" for r in ranks[ranks <= MODELS][:CALLS]]
    instances = [Instance(f"http://10.0.0.{i}:8080") for i in range(INSTANCES)]
    variant = Variant("A", 1.0, instances, RoutingStrategy.LEAST_OUTSTANDING_REQUESTS, None, multi_model=True)
    caches = {i.base_url: Lru(PER_INSTANCE) for i in instances}
    ideal, spread = Lru(PER_INSTANCE * INSTANCES), [Lru(PER_INSTANCE) for _ in instances]
    rng = np.random.default_rng(8)
    routed = ideal_hits = random_hits = 0
    for target in trace:
        chosen = choose_model_instance(variant, target)
        assert chosen is not None
        routed += caches[chosen.base_url].hit(target)
        ideal_hits += ideal.hit(target)
        random_hits += spread[int(rng.integers(INSTANCES))].hit(target)
    print(f"routing simulation: {MODELS} models, {len(trace)} Zipf(1.2) calls, {INSTANCES} instances x "
          f"{PER_INSTANCE} models")  # fmt: skip
    print(
        f"  ideal (one LRU of {PER_INSTANCE * INSTANCES}):  hit ratio {ideal_hits / len(trace):.3f}  (baseline)"
    )
    print(
        f"  rendezvous routing:           hit ratio {routed / len(trace):.3f}  x{routed / ideal_hits:.3f} of ideal"
    )
    print(
        f"  random routing (contrast):    hit ratio {random_hits / len(trace):.3f}  x{random_hits / ideal_hits:.3f}"
    )


def _tarball(model: Any) -> bytes:
    from sageport_dev.stack import joblib_tarball

    return joblib_tarball(model, compresslevel=1)


def _objects(model_data_url: str, name: str, multi_model: bool) -> list[dict[str, Any]]:
    container: dict[str, Any] = {"modelDataURL": model_data_url}
    if multi_model:
        container["mode"] = "MultiModel"
    variant = {
        "variantName": "AllTraffic",
        "modelName": name,
        "instanceType": "local",
        "initialInstanceCount": 1,
    }
    return [
        {"apiVersion": "sageport.io/v1alpha1", "kind": "Model", "metadata": {"name": name},
         "spec": {"primaryContainer": container}},
        {"apiVersion": "sageport.io/v1alpha1", "kind": "EndpointConfig", "metadata": {"name": name},
         "spec": {"productionVariants": [variant]}},
        {"apiVersion": "sageport.io/v1alpha1", "kind": "Endpoint", "metadata": {"name": name},
         "spec": {"endpointConfigName": name}},
    ]  # fmt: skip


def _p50_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _zipf_trace(models: int, calls: int, seed: int) -> list[str]:
    ranks = np.random.default_rng(seed).zipf(1.2, size=calls * 3)
    return [f"zipf/m{r - 1}.tar.gz" for r in ranks[ranks <= models][:calls]]


def _tiny_tarball(offset: float) -> bytes:
    from sklearn.linear_model import LinearRegression

    return _tarball(LinearRegression().fit(np.array([[0.0], [1.0]]), np.array([offset, offset + 1.0])))


def zipf_on_the_node(runtime: Any, s3: Any, kubeconfig: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from sageport_dev import stack

    models, calls = 10_000, 20_000
    client = s3.client()
    body = _tiny_tarball(1.0)  # the same bytes under every key: uploading 10,000 stays quick

    def upload(i: int) -> None:
        client.put_object(Bucket="sageport-models", Key=f"zipf/m{i}.tar.gz", Body=body)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(upload, range(models)))
    objects = _objects("s3://sageport-models/zipf/", "zipf", True)
    objects[0]["spec"]["primaryContainer"]["environment"] = {"SAGEPORT_MULTI_MODEL_MEMORY": "6Mi"}
    objects[1]["spec"]["productionVariants"][0]["initialInstanceCount"] = 2
    stack.apply_objects(kubeconfig, NAMESPACE, objects)
    stack.kubectl(kubeconfig, "wait", "-n", NAMESPACE, "--for=condition=Ready", "--timeout=300s",
                  "endpoints.sageport.io/zipf")  # fmt: skip
    trace = _zipf_trace(models, calls, seed=11)

    def call(target: str) -> float:
        started = time.perf_counter()
        answer = runtime.invoke_endpoint(
            EndpointName="zipf", TargetModel=target, ContentType="application/json", Body=b"[[1.0]]"
        )
        answer["Body"].read()
        return time.perf_counter() - started

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        latencies = sorted(pool.map(call, trace))
    seconds = time.monotonic() - started
    listed = stack.kubectl(kubeconfig, "get", "pods", "-n", NAMESPACE, "-o", "json",
                           "-l", "sageport.io/endpoint-object=zipf")  # fmt: skip
    hits = misses = loaded = 0.0
    for pod in json.loads(listed)["items"]:
        with urllib.request.urlopen(f"http://{pod['status']['podIP']}:8080/metrics", timeout=10) as page:
            lines = [line.split() for line in page.read().decode().splitlines() if line and line[0] != "#"]
        values = {name: float(value) for name, value, *_ in lines}
        hits += values["sageport_model_cache_hits_total"]
        misses += values["sageport_model_cache_misses_total"]
        loaded += values["sageport_loaded_models"]
    ideal = Lru(int(loaded))
    ideal_ratio = sum(ideal.hit(target) for target in trace) / len(trace)
    measured = hits / max(hits + misses, 1)
    p50, p99 = latencies[len(latencies) // 2] * 1000, latencies[int(len(latencies) * 0.99)] * 1000
    print(f"Zipf trace on the node: {models} models, {len(trace)} calls from 8 callers in {seconds:.0f} s, "
          f"2 instances holding {int(loaded)} models at the end:")  # fmt: skip
    print(f"  ideal (one LRU of {int(loaded)} models, same trace): hit ratio {ideal_ratio:.3f}  (baseline)")
    print(f"  the instances' own ModelCacheHit:            hit ratio {measured:.3f}  "
          f"x{measured / ideal_ratio:.3f} of ideal;  calls p50 {p50:.2f} ms, p99 {p99:.1f} ms")  # fmt: skip


def on_the_node() -> None:
    from bench._stack import iris_stack
    from sageport_dev import stack

    iris = iris_stack()
    kubeconfig, s3 = iris.kubeconfig, iris.s3
    stack.kubectl(kubeconfig, "delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true")
    key = stack.prepare_namespace(kubeconfig, NAMESPACE, s3)
    s3.put("sageport-models", "bench-mme/iris.tar.gz", stack.iris_model_tarball())
    from sklearn.neighbors import KNeighborsClassifier

    features = np.random.default_rng(1).normal(size=(100_000, 64))  # ~51 MB, incompressible
    big = _tarball(KNeighborsClassifier(n_neighbors=1).fit(features, np.arange(100_000) % 3))
    s3.put("sageport-models", "bench-mme/big.tar.gz", big)
    objects = _objects("s3://sageport-models/iris/model.tar.gz", "single", False)
    objects += _objects("s3://sageport-models/bench-mme/", "multi", True)
    stack.apply_objects(kubeconfig, NAMESPACE, objects)
    for name in ("single", "multi"):
        stack.kubectl(kubeconfig, "wait", "-n", NAMESPACE, "--for=condition=Ready", "--timeout=300s",
                      f"endpoints.sageport.io/{name}")  # fmt: skip
    runtime = stack.runtime_client(iris.env.runtime_url, key)
    row = b"5.1,3.5,1.4,0.2"

    def call(endpoint: str, **extra: Any) -> float:
        started = time.perf_counter()
        runtime.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=row, **extra)[
            "Body"
        ].read()
        return time.perf_counter() - started

    call("multi", TargetModel="iris.tar.gz")  # loaded: what follows is warm
    single: list[float] = []
    multi: list[float] = []
    for _ in range(10):  # alternating rounds: drift of a noisy machine hits both
        single += [call("single") for _ in range(200)]
        multi += [call("multi", TargetModel="iris.tar.gz") for _ in range(200)]
    print(f"warm call, boto3 through the gateway, {len(single)} calls each, rounds alternating:")
    print(f"  single-model endpoint: p50 {_p50_ms(single):.3f} ms  (baseline)")
    print(f"  multi-model endpoint:  p50 {_p50_ms(multi):.3f} ms  added {_p50_ms(multi) - _p50_ms(single):+.3f} ms  "
          f"x{_p50_ms(multi) / _p50_ms(single):.3f}")  # fmt: skip

    query = json.dumps(features[:1].tolist()).encode()
    started = time.perf_counter()
    runtime.invoke_endpoint(
        EndpointName="multi", TargetModel="big.tar.gz", ContentType="application/json", Body=query
    )
    first = time.perf_counter() - started
    started = time.perf_counter()
    client = s3.client()
    with tempfile.TemporaryDirectory() as scratch:
        archive = Path(scratch) / "big.tar.gz"
        client.download_file("sageport-models", "bench-mme/big.tar.gz", str(archive))
        with tarfile.open(archive) as tar:
            tar.extractall(scratch, filter="data")
        import joblib

        joblib.load(Path(scratch) / "model.joblib").predict(features[:1])
    by_hand = time.perf_counter() - started
    print(f"first call of a {len(big) / 2**20:.0f} MB model:")
    print(f"  boto3 download + unpack + joblib.load + predict, in process: {by_hand:.2f} s  (baseline)")
    print(
        f"  first call through the gateway (download, load, invoke):   {first:.2f} s  x{first / by_hand:.2f}"
    )
    zipf_on_the_node(runtime, s3, kubeconfig)
    stack.kubectl(kubeconfig, "delete", "namespace", NAMESPACE, "--wait=false")


def main() -> None:
    simulate()
    if "--simulate-only" not in sys.argv:
        on_the_node()


if __name__ == "__main__":
    main()
