"""``make demo``: the main job, end to end on this machine, with each step timed.

1. ``make up``'s stack (sageport_dev.local_stack): the local cluster with one real node
   (kubelet, kube-proxy, containerd) beside the KWOK nodes, the runtime and operator images built
   without Docker, a real S3-compatible server (versitygw), ``helm upgrade --install`` of
   charts/sageport, and the ``sagemaker`` namespace with its S3 credentials and invoke key;
2. an sklearn model trained here, packed as ``model.tar.gz`` and put in ``$SAGEPORT_BUCKET``;
3. ``examples/realtime-sklearn`` applied (its variant on the ``local`` instance type, the real
   node); the Endpoint goes ``Ready`` once its pod fetched the model and answers ``/ping``;
4. plain boto3 (``boto3.client("sagemaker-runtime")``, no endpoint or key arguments: the
   environment ``make up`` exports) invoking the endpoint through the gateway.

A stack this run started is stopped at the end (``--keep`` leaves it running and prints how to
reach it); a stack that was already up is left as it was.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from sageport_dev import local_stack, stack
from sageport_dev.control_plane import ClusterError

EXAMPLE = stack.REPO / "examples" / "realtime-sklearn"
ENDPOINT = "iris"


def _print(line: str) -> None:
    print(line, flush=True)


def run(state_dir: Path, timings: dict[str, float]) -> None:
    clock = local_stack.Timings(timings)
    started = time.monotonic()
    env = local_stack.up(state_dir, log=_print, timings=timings)
    os.environ.update(env.environ())  # what `eval "$(make -s up)"` does for a shell
    installed = time.monotonic()
    with clock.step(f"model trained, uploaded to s3://{env.bucket}/iris/model.tar.gz (plain boto3)", _print):
        import boto3  # type: ignore[import-untyped]

        boto3.client("s3").put_object(
            Bucket=env.bucket, Key="iris/model.tar.gz", Body=stack.iris_model_tarball()
        )
    with clock.step(
        f"examples/realtime-sklearn applied in {env.namespace} (instance type local), Ready", _print
    ):
        kubeconfig = Path(env.kubeconfig)
        stack.apply_objects(kubeconfig, env.namespace, stack.example_objects(EXAMPLE))
        stack.kubectl(
            kubeconfig,
            "wait",
            "-n",
            env.namespace,
            "--for=condition=Ready",
            "--timeout=180s",
            f"endpoints.sageport.io/{ENDPOINT}",
        )
        _print(
            stack.kubectl(kubeconfig, "get", "-n", env.namespace, "endpoints.sageport.io,pods", "-o", "wide")
        )
    with clock.step('boto3.client("sagemaker-runtime").invoke_endpoint through the gateway', _print):
        runtime = boto3.client("sagemaker-runtime")
        body = b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n"
        response = runtime.invoke_endpoint(EndpointName=ENDPOINT, ContentType="text/csv", Body=body)
        _print(
            f"   prediction: {response['Body'].read().decode().strip()}  "
            f"(variant {response['InvokedProductionVariant']}, gateway {env.runtime_url})"
        )
    _print(f"stack up to the first successful invocation: {time.monotonic() - installed:.1f} s after `up`")
    _print(f"demo done in {time.monotonic() - started:.1f} s")


def _remove_example(state_dir: Path) -> None:
    env = local_stack.StackEnv.load(state_dir / local_stack.ENV_FILE)
    if env is not None:
        stack.delete_objects(Path(env.kubeconfig), env.namespace, stack.example_objects(EXAMPLE))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sageport_dev demo", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--keep", action="store_true", help="leave the stack running (as `make up` does)")
    args = parser.parse_args(argv)
    state_dir = local_stack.stack_dir_from_env().absolute()
    was_up, _ = local_stack.status(state_dir)
    timings: dict[str, float] = {}
    try:
        run(state_dir, timings)
    except (ClusterError, stack.StackError) as error:
        print(f"demo failed: {error}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print('left running: `eval "$(make -s up)"` reaches it; `make down` stops it')
        elif was_up:
            _remove_example(state_dir)  # the stack stays as it was before the demo
        else:
            local_stack.down(state_dir, log=_print)
    return 0
