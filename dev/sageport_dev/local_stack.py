"""The whole local stack as one command: ``make up`` / ``make down`` (``python -m sageport_dev up``).

``up`` starts what ``make demo`` starts and leaves it running: the cluster with its real node,
the images, the S3 server, the Helm chart, and a namespace ready for Endpoints (restricted Pod
Security enforced, the model fetcher's S3 credentials, an access key whose identity, the
ServiceAccount ``sagemaker-api``, may do everything the control-plane API does there). It ends by printing
``export NAME=value`` lines, so ``eval "$(make -s up)"`` prepares a shell where plain boto3 code
needs no endpoint or credential arguments (boto3 reads ``AWS_ENDPOINT_URL_<SERVICE>``). One key
pair serves S3, invocations and the control plane. Idempotent: when the stack already runs and the images
are unchanged, a second ``up`` only checks it and prints the same lines; after a code change it
imports the new images and upgrades the release.

``up(with_prometheus=True)`` (``make up PROMETHEUS=1``) adds a real Prometheus scraping the gateway,
the alarm source of Endpoint updates: the operator gets its URL (chart value
``operator.alarms.prometheusUrl``) and the shell ``SAGEPORT_PROMETHEUS_URL``; once started it
stays part of the stack until ``down``, and ``install_alarm_rules`` loads alerting rules into it.
Without it nothing of Prometheus is started or checked.

``down`` stops every process ``up`` started and removes its directory (mounts included).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from sageport import contract
from sageport_dev import build, keda, prometheus, real_node, stack
from sageport_dev import redis as sageport_redis
from sageport_dev.control_plane import (
    ComponentStatus,
    health,
    running_state,
    start,
    status_line,
    stop_cluster,
)
from sageport_dev.layout import Layout
from sageport_dev.processes import stop
from sageport_dev.real_node import Log

DEFAULT_STACK_DIR = Path("/tmp/sageport-stack")
NAMESPACE = "sagemaker"
BUCKET = "sageport-models"  # the bucket the examples name
ENV_FILE = "stack-env.json"
SDK_CONFIG_FILE = "sagemaker-sdk-config.yaml"
# The SageMaker Python SDK reads its defaults from this file (its admin-level config; a user's own
# ~/.config/sagemaker/config.yaml still applies on top).
SDK_CONFIG_ENV = "SAGEMAKER_ADMIN_CONFIG_OVERRIDE"


def stack_dir_from_env() -> Path:
    return Path(os.environ.get("SAGEPORT_STACK_DIR", str(DEFAULT_STACK_DIR)))


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class StackEnv:
    """What a shell needs to use the running stack; ``exports`` are the lines ``up`` prints."""

    kubeconfig: str
    runtime_url: str
    s3_url: str
    access_key_id: str
    secret_access_key: str
    region: str
    namespace: str
    bucket: str
    images: tuple[str, ...]
    prometheus_url: str | None = None  # the alarm source, when the stack runs Prometheus
    sdk_config: str | None = None  # the SageMaker Python SDK's defaults (see sdk_config_yaml)
    redis_url: str | None = None  # the async inference queue (its password is in the namespaces' Secret)

    def environ(self) -> dict[str, str]:
        alarms = {contract.PROMETHEUS_URL_ENV: self.prometheus_url} if self.prometheus_url else {}
        sdk = {SDK_CONFIG_ENV: self.sdk_config} if self.sdk_config else {}
        return {
            "KUBECONFIG": self.kubeconfig,
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": self.runtime_url,
            # The control-plane API (boto3's "sagemaker" client) is served on the gateway's port.
            "AWS_ENDPOINT_URL_SAGEMAKER": self.runtime_url,
            "AWS_ENDPOINT_URL_S3": self.s3_url,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_DEFAULT_REGION": self.region,
            "SAGEPORT_NAMESPACE": self.namespace,
            "SAGEPORT_BUCKET": self.bucket,
            **sdk,
            **alarms,
        }

    def exports(self) -> str:
        return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in self.environ().items())

    def access_key(self) -> stack.AccessKey:
        return stack.AccessKey(self.access_key_id, self.secret_access_key)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))
        path.chmod(0o600)  # holds the key pair

    @classmethod
    def load(cls, path: Path) -> StackEnv | None:
        with contextlib.suppress(FileNotFoundError, ValueError, TypeError):
            saved = json.loads(path.read_text())
            return cls(**{**saved, "images": tuple(saved["images"])})
        return None


@dataclass
class Timings:
    steps: dict[str, float]

    @contextlib.contextmanager
    def step(self, what: str, log: Log) -> Iterator[None]:
        log(f"-> {what} ...")
        started = time.monotonic()
        yield
        self.steps[what] = round(time.monotonic() - started, 1)
        log(f"   {self.steps[what]} s")


def _gateway_answers(url: str) -> bool:
    with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
        return bool(response.status == 200)
    return False


def _prometheus_root(state_dir: Path) -> Path:
    return state_dir / "prometheus"


def sdk_config_yaml(bucket: str) -> str:
    """The SageMaker Python SDK's defaults for this stack: its default bucket. Without one the SDK
    derives ``sagemaker-<region>-<account>`` from STS GetCallerIdentity, which it always sends to
    AWS's own STS address (``endpoint_url`` fixed in the SDK, so AWS_ENDPOINT_URL_STS is not
    read): framework models with an ``entry_point`` upload their ``sourcedir.tar.gz`` here."""
    return (
        "SchemaVersion: '1.0'\n"
        "SageMaker:\n"
        "  PythonSDK:\n"
        "    Modules:\n"
        "      Session:\n"
        f"        DefaultS3Bucket: {bucket}\n"
    )


def _keda_root(state_dir: Path) -> Path:
    return state_dir / "keda"


def _redis_root(state_dir: Path) -> Path:
    return state_dir / "redis"


def running_redis(state_dir: Path | None = None) -> sageport_redis.RedisServer | None:
    """The stack's Redis (its password goes into each namespace that runs async endpoints)."""
    return sageport_redis.running(_redis_root((state_dir or stack_dir_from_env()).absolute()))


def up(
    state_dir: Path | None = None,
    log: Log = _stderr,
    timings: dict[str, float] | None = None,
    *,
    with_prometheus: bool = False,
) -> StackEnv:
    """Start (or check) the stack in ``state_dir``; return what a shell needs to use it.
    ``with_prometheus``: with Prometheus too (kept anyway once an earlier ``up`` started it)."""
    state_dir = (state_dir or stack_dir_from_env()).absolute()
    layout = Layout(state_dir)
    clock = Timings({} if timings is None else timings)
    saved = StackEnv.load(state_dir / ENV_FILE)
    had_prometheus = saved is not None and saved.prometheus_url is not None
    runs_prometheus = with_prometheus or had_prometheus
    refs: dict[str, str] | None = None
    if saved is not None and status(state_dir)[0]:
        with clock.step("images (cached by content, imported when new)", log):
            refs = stack.load_images(layout, log=lambda _: None)
        if tuple(sorted(refs.values())) == saved.images and runs_prometheus == had_prometheus:
            log(f"the stack in {state_dir} is up")
            return saved

    with clock.step("local cluster: control plane, KWOK nodes, 1 real node (kubelet, containerd)", log):
        existing = running_state(layout)
        if existing is None or not existing.real_node:
            start(state_dir, with_real_node=True, die_with_parent=False, log=lambda _: None)
    if refs is None:  # else just loaded above, with a running cluster: nothing more to import
        with clock.step("images (runtime, operator) built without Docker and imported into containerd", log):
            refs = stack.load_images(layout, log=lambda line: log(f"   {line}"))
    with clock.step(f"S3 server (versitygw), bucket {BUCKET}", log):
        s3 = stack.start_s3(state_dir / "s3", die_with_parent=False)
        s3.ensure_bucket(BUCKET)
    prometheus_url: str | None = None
    if runs_prometheus:
        where = f"{real_node.NODE_IP}:{stack.PROMETHEUS_PORT}"
        with clock.step(
            f"Prometheus (Debian's) on {where}, scraping the gateway through a metrics Service", log
        ):
            prometheus_url = stack.start_prometheus(
                _prometheus_root(state_dir), layout.kubeconfig, die_with_parent=False
            ).url
    with clock.step(
        f"KEDA {build.KEDA_VERSION} (CRDs; operator and metrics API server out of cluster, the latter "
        "as APIService v1beta1.external.metrics.k8s.io) for serverless and target-tracked variants",
        log,
    ):
        scaler_address = stack.start_keda(_keda_root(state_dir), layout.kubeconfig, die_with_parent=False)
    with clock.step(
        f"Redis (Debian's redis-server, AOF everysec, a password) on {real_node.NODE_IP}:{stack.REDIS_PORT}",
        log,
    ):
        redis = stack.start_redis(_redis_root(state_dir), die_with_parent=False)
    with clock.step("helm upgrade --install charts/sageport (CRDs, catalog, operator, gateway)", log):
        stack.prepare_system_namespace(layout.kubeconfig, s3, redis.password)
        values = stack.local_values(refs, s3, prometheus_url, scaler_address, redis.url)
        stack.helm_install(layout.kubeconfig, values, state_dir)
    with clock.step(
        f"namespace {NAMESPACE}: restricted Pod Security, S3 credentials, access key acting as "
        f"{stack.API_IDENTITY}",
        log,
    ):
        # One key pair for S3 and for invoking: the S3 server's own.
        key = stack.AccessKey(s3.access_key, s3.secret_key)
        stack.prepare_namespace(layout.kubeconfig, NAMESPACE, s3, key=key, redis_password=redis.password)
    sdk_config = state_dir / SDK_CONFIG_FILE
    sdk_config.write_text(sdk_config_yaml(BUCKET))
    env = StackEnv(
        kubeconfig=str(layout.kubeconfig),
        runtime_url=stack.gateway_url(layout.kubeconfig),
        s3_url=s3.endpoint_url,
        access_key_id=key.access_key_id,
        secret_access_key=key.secret_access_key,
        region=stack.REGION,
        namespace=NAMESPACE,
        bucket=BUCKET,
        images=tuple(sorted(refs.values())),
        prometheus_url=prometheus_url,
        sdk_config=str(sdk_config),
        redis_url=redis.url,
    )
    env.save(state_dir / ENV_FILE)
    log(f"the stack in {state_dir} is up; stop it with `make down`")
    return env


def down(state_dir: Path | None = None, log: Log = _stderr) -> list[str]:
    """Stop what ``up`` started and remove its directory; return what is still left (nothing,
    unless something refused to stop: processes, mounts or the bridge, each named)."""
    state_dir = (state_dir or stack_dir_from_env()).absolute()
    left = prometheus.stop_server(_prometheus_root(state_dir))
    left += keda.stop_operator(_keda_root(state_dir))
    left += sageport_redis.stop_server(_redis_root(state_dir))
    s3 = stack.running_s3(state_dir / "s3")
    if s3 is not None and s3.process is not None:
        stop([s3.process])
    removed = stop_cluster(state_dir)
    left += real_node.leftovers(Layout(state_dir))
    if left:
        log(f"stopped the stack in {state_dir}, but these are left: {', '.join(left)}")
    else:
        log(f"stopped the stack in {state_dir}" if removed else f"no stack in {state_dir}")
    return left


def status(state_dir: Path | None = None) -> tuple[bool, list[str]]:
    """Whether the stack is up, and a line per part."""
    state_dir = (state_dir or stack_dir_from_env()).absolute()
    s3 = stack.running_s3(state_dir / "s3")
    env = StackEnv.load(state_dir / ENV_FILE)
    components = health(state_dir)  # empty when no cluster runs there
    parts = [
        *components,
        ComponentStatus(
            "versitygw (S3)",
            s3.process.pid if s3 is not None and s3.process is not None else None,
            s3 is not None,
            s3.endpoint_url if s3 else "",
        ),
        *_keda_status(state_dir),
        ComponentStatus(
            "gateway",
            None,
            env is not None and _gateway_answers(env.runtime_url),
            env.runtime_url if env else "",
        ),
    ]
    redis = sageport_redis.running(_redis_root(state_dir))
    parts.append(
        ComponentStatus(
            "redis (async queue)",
            redis.process.pid if redis is not None and redis.process is not None else None,
            redis is not None,
            redis.url if redis is not None else "",
        )
    )
    if env is not None and env.prometheus_url is not None:  # only a stack started with it checks it
        server = prometheus.running(_prometheus_root(state_dir))
        pid = server.process.pid if server is not None and server.process is not None else None
        parts.append(ComponentStatus("prometheus (alarms)", pid, server is not None, env.prometheus_url))
    return bool(components) and all(part.healthy for part in parts), [status_line(part) for part in parts]


def _keda_status(state_dir: Path) -> list[ComponentStatus]:
    operator = keda.running(_keda_root(state_dir))
    pid = operator.process.pid if operator is not None and operator.process is not None else None
    adapter = keda.running_adapter(_keda_root(state_dir))
    return [
        ComponentStatus("keda-operator", pid, operator is not None, operator.health_url if operator else ""),
        ComponentStatus(
            "keda-metrics-apiserver (1 <-> N)",
            adapter.process.pid if adapter is not None and adapter.process is not None else None,
            adapter is not None,
            "https://{}:{}".format(*adapter.address) if adapter is not None else "",
        ),
    ]


def install_alarm_rules(
    files: Sequence[Path] = (), remove: Sequence[str] = (), state_dir: Path | None = None
) -> list[str]:
    """Load alerting rule files into the stack's Prometheus (each checked by promtool; a file of
    the same name is replaced) and remove installed ones by file name; return the installed names."""
    state_dir = (state_dir or stack_dir_from_env()).absolute()
    server = prometheus.running(_prometheus_root(state_dir))
    if server is None:
        raise stack.StackError(
            f"no Prometheus runs in the stack in {state_dir}: `make up PROMETHEUS=1` starts it"
        )
    try:
        for name in remove:
            server.remove_rules(name)
        for path in files:
            server.install_rules(path)
    except prometheus.PrometheusError as error:
        raise stack.StackError(str(error)) from None
    return sorted(p.name for p in server.rules_dir.iterdir() if not p.name.startswith("."))
