"""``sageport-server [serve] [--model-dir DIR] [--port N]``: the variant pod's model container."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping, Sequence

from sageport.server.config import ConfigError, ServerConfig, load_config

NATIVE_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def cpu_budget(cgroup_cpu_max: str | None, affinity: int) -> int:
    """CPUs this container may use: the cgroup quota rounded up, else the CPUs it may run on (pure)."""
    if cgroup_cpu_max:
        quota, _, period = cgroup_cpu_max.strip().partition(" ")
        if quota.isdigit() and period.isdigit() and int(period) > 0:
            return max(1, min(affinity, -(-int(quota) // int(period))))
    return max(1, affinity)


def container_cpus() -> int:
    """The CPUs this container may use, from the cgroup v2 quota and the affinity mask."""
    try:
        with open("/sys/fs/cgroup/cpu.max") as cpu_max:
            quota: str | None = cpu_max.read()
    except OSError:
        quota = None
    return cpu_budget(quota, len(os.sched_getaffinity(0)))


def limit_native_threads(environ: MutableMapping[str, str], cpus: int) -> None:
    """Size BLAS/OpenMP pools to the pod's CPU quota, not the node's core count.

    Must run before numpy is imported. Without it a pod limited to one CPU on a 64-core node
    starts 64 spinning BLAS threads per process and every small predict() pays for it.
    An explicit setting by the user always wins.
    """
    if any(name in environ for name in NATIVE_THREAD_VARIABLES):
        return
    for name in NATIVE_THREAD_VARIABLES:
        environ[name] = str(cpus)


def _log_level(name: str) -> int | str:
    # SAGEMAKER_CONTAINER_LOG_LEVEL is numeric ("20"); ours may be a name ("INFO").
    return int(name) if name.isdigit() else name


def serve(config: ServerConfig) -> None:
    import uvicorn

    from sageport.server.app import build_app

    app = build_app(config)
    uvicorn_config = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,  # a log line per request costs more than the rest of the fast path
        log_config=None,
        timeout_keep_alive=75,  # longer than common client/proxy idle timeouts (60 s)
        timeout_graceful_shutdown=25,  # SageMaker and Kubernetes kill 30 s after SIGTERM
    )
    uvicorn.Server(uvicorn_config).run()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        cpus = container_cpus()
        config = load_config(sys.argv[1:] if argv is None else argv, os.environ, cpus)
    except ConfigError as exc:
        print(f"sageport-server: {exc}", file=sys.stderr)
        return 2
    limit_native_threads(os.environ, cpus)
    logging.basicConfig(
        level=_log_level(config.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("sageport.server").info(
        "serving %s on %s:%d (multi-model=%s, batching=%s)",
        config.multi_model_root if config.multi_model else config.model_dir,
        config.host,
        config.port,
        config.multi_model,
        config.batching.enabled,
    )
    serve(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
