"""Bring the local control plane up, report on it, and take it down again.

Everything lives in one state directory: PKI, kubeconfigs, etcd data, logs and
``state.json`` (ports and the exact processes started). Components listen on 127.0.0.1
only, on ports picked free at start, so several clusters can run side by side.
"""

from __future__ import annotations

import base64
import json
import shutil
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sageport_dev import build, images, real_node
from sageport_dev.apiserver import ApiServerClient, insecure_context, probe
from sageport_dev.layout import Layout as Layout  # re-exported: older callers import it from here
from sageport_dev.nodes import (
    DEFAULT_NODE_SET,
    FAKE_NODE_LABEL,
    KWOK_ANNOTATION,
    load_node_set,
    node_manifests,
)
from sageport_dev.pki import ClientIdentity, ClusterPki, generate_pki
from sageport_dev.processes import ProcessRecord, free_ports, spawn, stop, tail

SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"  # the `kubernetes` Service: first address of the service range
# kwok's fallback range for pods on nodes without a podCIDR; disjoint from the node ranges.
KWOK_FALLBACK_POD_CIDR = "10.240.0.1/16"
KWOK_STAGES = Path(__file__).with_name("kwok-stages.yaml")
NODE_LEASE_SECONDS = 40

_POLL_SECONDS = 0.1
_START_ATTEMPTS = 3
_NODE_LIFECYCLE_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")

_ADMIN = ClientIdentity("admin", "sageport-admin", ("system:masters",))
_CONTROLLER_MANAGER = ClientIdentity("controller-manager", "system:kube-controller-manager")
_SCHEDULER = ClientIdentity("scheduler", "system:kube-scheduler")
_KWOK = ClientIdentity("kwok", "kwok-controller", ("system:masters",))
# The real node's identities: the Node authorizer knows kubelets by this name and group.
_KUBELET = ClientIdentity("kubelet", f"system:node:{real_node.NODE_NAME}", ("system:nodes",))
_KUBE_PROXY = ClientIdentity("kube-proxy", "system:kube-proxy")
_APISERVER_KUBELET_CLIENT = ClientIdentity(
    "apiserver-kubelet-client", "kube-apiserver-kubelet-client", ("system:masters",)
)
# The aggregation layer's client: the apiserver proxies aggregated APIs (KEDA's external metrics)
# with this certificate and the caller's name in X-Remote-* headers, which the extension server
# trusts only from this name.
_FRONT_PROXY = ClientIdentity("front-proxy-client", "front-proxy-client")

Log = Callable[[str], None]


class ClusterError(RuntimeError):
    """The cluster could not be started or is not healthy; the message says which part and why."""


class PortInUseError(ClusterError):
    """A component could not bind the port chosen for it: something else took it meanwhile."""


@dataclass
class ClusterState:
    """What ``state.json`` records: how to reach the cluster and which processes are ours."""

    apiserver_url: str
    ports: dict[str, int]
    processes: list[ProcessRecord] = field(default_factory=list)
    node_names: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    real_node: bool = False

    def save(self, layout: Layout) -> None:
        data = {
            "apiserver_url": self.apiserver_url,
            "ports": self.ports,
            "processes": [record.to_json() for record in self.processes],
            "node_names": self.node_names,
            "timings": self.timings,
            "real_node": self.real_node,
        }
        tmp = layout.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(layout.state_file)

    @classmethod
    def load(cls, layout: Layout) -> ClusterState | None:
        try:
            data = json.loads(layout.state_file.read_text())
        except FileNotFoundError:
            return None
        return cls(
            apiserver_url=data["apiserver_url"],
            ports={str(k): int(v) for k, v in data["ports"].items()},
            processes=[ProcessRecord.from_json(item) for item in data["processes"]],
            node_names=[str(name) for name in data["node_names"]],
            timings={str(k): float(v) for k, v in data["timings"].items()},
            real_node=bool(data.get("real_node", False)),
        )


def admin_client(layout: Layout, state: ClusterState) -> ApiServerClient:
    return ApiServerClient(
        state.apiserver_url,
        ca=layout.pki / "ca.crt",
        cert=layout.pki / f"{_ADMIN.file_stem}.crt",
        key=layout.pki / f"{_ADMIN.file_stem}.key",
    )


# ---------------------------------------------------------------------------------------------
# configuration files


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _write_kubeconfig(path: Path, *, server: str, ca: Path, cert: Path, key: Path, user: str) -> None:
    """A self-contained kubeconfig (certificates inline), so it can be copied anywhere."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "sageport", "cluster": {"server": server, "certificate-authority-data": _b64(ca)}}
        ],
        "users": [
            {"name": user, "user": {"client-certificate-data": _b64(cert), "client-key-data": _b64(key)}}
        ],
        "contexts": [{"name": "sageport", "context": {"cluster": "sageport", "user": user}}],
        "current-context": "sageport",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)


def _write_kubeconfigs(layout: Layout, pki: ClusterPki, server: str) -> None:
    for identity in (_ADMIN, _CONTROLLER_MANAGER, _SCHEDULER, _KWOK, _KUBELET, _KUBE_PROXY):
        pair = pki.clients.get(identity.file_stem)
        if pair is None:
            continue
        target = layout.kubeconfig if identity is _ADMIN else layout.component_kubeconfig(identity.file_stem)
        _write_kubeconfig(
            target, server=server, ca=pki.ca.cert, cert=pair.cert, key=pair.key, user=identity.user
        )


def _write_scheduler_config(layout: Layout) -> Path:
    path = layout.root / "kube-scheduler.yaml"
    config = {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "clientConnection": {"kubeconfig": str(layout.component_kubeconfig(_SCHEDULER.file_stem))},
        "leaderElection": {"leaderElect": False},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# ---------------------------------------------------------------------------------------------
# command lines


def _etcd_argv(binary: Path, layout: Layout, ports: dict[str, int]) -> list[str]:
    client = f"http://127.0.0.1:{ports['etcd']}"
    peer = f"http://127.0.0.1:{ports['etcd-peer']}"
    return [
        str(binary),
        "--name=sageport",
        f"--data-dir={layout.etcd_data}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=sageport={peer}",
        "--unsafe-no-fsync",  # test data: durability buys nothing and costs seconds
        "--log-level=warn",
    ]


def _apiserver_argv(
    binary: Path, layout: Layout, pki: ClusterPki, ports: dict[str, int], *, with_real_node: bool
) -> list[str]:
    if with_real_node:
        kubelet_client = pki.clients[_APISERVER_KUBELET_CLIENT.file_stem]
        front_proxy = pki.clients[_FRONT_PROXY.file_stem]
        # Pods reach the apiserver through the `kubernetes` Service, which points at the
        # bridge address; so it listens there too (all addresses: loopback clients stay).
        network = [
            "--bind-address=0.0.0.0",
            f"--advertise-address={real_node.NODE_IP}",
            f"--kubelet-client-certificate={kubelet_client.cert}",
            f"--kubelet-client-key={kubelet_client.key}",
            "--kubelet-preferred-address-types=InternalIP",
            # The aggregation layer, for KEDA's metrics API server (1 <-> N through the HPA). It
            # runs on this machine, so its APIService names a Service without selector whose
            # endpoint is the node IP: the apiserver dials that endpoint itself (aggregator
            # routing) rather than the Service's cluster IP.
            f"--requestheader-client-ca-file={pki.ca.cert}",
            f"--requestheader-allowed-names={_FRONT_PROXY.user}",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={front_proxy.cert}",
            f"--proxy-client-key-file={front_proxy.key}",
            "--enable-aggregator-routing=true",
        ]
    else:
        # Without pods that run, nothing needs the `kubernetes` Service; otherwise the
        # apiserver would publish 127.0.0.1 as its endpoint.
        network = [
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            "--endpoint-reconciler-type=none",
        ]
    return [
        str(binary),
        f"--etcd-servers=http://127.0.0.1:{ports['etcd']}",
        *network,
        f"--secure-port={ports['apiserver']}",
        f"--cert-dir={layout.root / 'apiserver-certs'}",
        f"--tls-cert-file={pki.apiserver.cert}",
        f"--tls-private-key-file={pki.apiserver.key}",
        f"--client-ca-file={pki.ca.cert}",
        f"--service-account-key-file={pki.service_account_pub}",
        f"--service-account-signing-key-file={pki.service_account_key}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--authorization-mode=Node,RBAC",
        "--allow-privileged=true",
        "--profiling=false",
    ]


def _controller_manager_argv(
    binary: Path, layout: Layout, pki: ClusterPki, ports: dict[str, int]
) -> list[str]:
    kubeconfig = layout.component_kubeconfig(_CONTROLLER_MANAGER.file_stem)
    return [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={ports['controller-manager']}",
        f"--cert-dir={layout.root / 'controller-manager-certs'}",
        "--leader-elect=false",
        f"--service-account-private-key-file={pki.service_account_key}",
        f"--root-ca-file={pki.ca.cert}",
        f"--cluster-signing-cert-file={pki.ca.cert}",
        f"--cluster-signing-key-file={pki.ca.key}",
        "--use-service-account-credentials=true",
        # The default 20 QPS throttles start-up, where every controller gets its service account
        # and token in turn: about 4 s here before the node lifecycle controller even starts.
        "--kube-api-qps=200",
        "--kube-api-burst=400",
        "--profiling=false",
    ]


def _scheduler_argv(binary: Path, layout: Layout, ports: dict[str, int]) -> list[str]:
    kubeconfig = layout.component_kubeconfig(_SCHEDULER.file_stem)
    return [
        str(binary),
        f"--config={_write_scheduler_config(layout)}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={ports['scheduler']}",
        f"--cert-dir={layout.root / 'scheduler-certs'}",
    ]


def _kwok_argv(binary: Path, layout: Layout, ports: dict[str, int]) -> list[str]:
    return [
        str(binary),
        f"--kubeconfig={layout.component_kubeconfig(_KWOK.file_stem)}",
        f"--config={KWOK_STAGES}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION[0]}={KWOK_ANNOTATION[1]}",
        "--node-ip=127.0.0.1",
        f"--cidr={KWOK_FALLBACK_POD_CIDR}",
        f"--server-address=127.0.0.1:{ports['kwok']}",
        # Renew a Lease per node, as kubelets do; without it only the status heartbeat stage
        # keeps nodes from going NotReady, with little margin under the 50 s grace period.
        f"--node-lease-duration-seconds={NODE_LEASE_SECONDS}",
    ]


# ---------------------------------------------------------------------------------------------
# waiting


def _fail_if_any_died(state: ClusterState) -> None:
    for record in state.processes:
        if not record.alive():
            error = PortInUseError if "address already in use" in tail(record.log, 200) else ClusterError
            raise error(
                f"{record.name} (pid {record.pid}) exited; last lines of {record.log}:\n{tail(record.log)}"
            )


def _wait_until(what: str, ready: Callable[[], bool], state: ClusterState, timeout: float) -> None:
    """Poll ``ready`` until it holds; fail fast if one of our processes dies."""
    started = time.monotonic()
    while True:
        _fail_if_any_died(state)
        try:
            if ready():
                return
        except OSError:
            pass  # not listening yet
        if time.monotonic() - started > timeout:
            logs = "\n".join(f"--- {r.name} ({r.log}):\n{tail(r.log, 10)}" for r in state.processes)
            raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what}\n{logs}")
        time.sleep(_POLL_SECONDS)


def _ready_node_names(client: ApiServerClient) -> set[str]:
    return _ready_nodes(client, f"{FAKE_NODE_LABEL[0]}={FAKE_NODE_LABEL[1]}")


def _ready_nodes(client: ApiServerClient, label_selector: str) -> set[str]:
    selector = urllib.parse.quote(label_selector)
    response = client.get(f"/api/v1/nodes?labelSelector={selector}")
    if response.status != 200:
        return set()
    ready: set[str] = set()
    for node in response.json()["items"]:
        conditions = node.get("status", {}).get("conditions") or []
        taints = node.get("spec", {}).get("taints") or []
        # The node lifecycle controller lifts its not-ready taint a moment after Ready turns True;
        # until then the scheduler would still keep pods off the node.
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions) and not any(
            t["key"] in _NODE_LIFECYCLE_TAINTS for t in taints
        ):
            ready.add(node["metadata"]["name"])
    return ready


def _register_nodes(client: ApiServerClient, manifests: list[dict[str, Any]]) -> None:
    for manifest in manifests:
        response = client.request("POST", "/api/v1/nodes", manifest)
        if response.status not in (201, 409):
            raise ClusterError(
                f"creating node {manifest['metadata']['name']}: {response.status} {response.body!r}"
            )


# ---------------------------------------------------------------------------------------------
# public operations


def _prepare_state_dir(layout: Layout, log: Log) -> None:
    """Start from an empty directory; clear a stale cluster of ours, never someone else's files."""
    if layout.root.exists():
        if not layout.marker.exists() and any(layout.root.iterdir()):
            raise ClusterError(
                f"{layout.root} exists and is not a sageport cluster directory; refusing to use it"
            )
        stale = ClusterState.load(layout)
        if stale is not None:
            log(f"clearing an unhealthy cluster in {layout.root}")
            _stop_processes(layout, stale)
        shutil.rmtree(layout.root)
    layout.root.mkdir(parents=True)
    layout.marker.touch()


def running_state(layout: Layout) -> ClusterState | None:
    """The recorded state if every recorded process is still alive and the apiserver is ready."""
    state = ClusterState.load(layout)
    if state is None or not state.processes or not all(record.alive() for record in state.processes):
        return None
    try:
        if admin_client(layout, state).get("/readyz").status != 200:
            return None
    except OSError:
        return None
    return state


def start(
    state_dir: Path,
    *,
    node_set: Path = DEFAULT_NODE_SET,
    die_with_parent: bool = False,
    with_real_node: bool = False,
    timeout: float = 120.0,
    log: Log = print,
) -> ClusterState:
    """Build (if not cached) and start the cluster in ``state_dir``; return once it is ready.

    Ready means: apiserver /readyz, controller manager and scheduler /healthz, kwok /healthz,
    every node of ``node_set`` Ready, and the ``default`` service account in ``default``;
    with ``with_real_node`` also containerd, kubelet and kube-proxy, and that node Ready.
    If it is already running there (with a real node if one is asked for), return its state
    untouched. On failure every process started here is stopped again and ClusterError tells
    which part failed, with its log.
    """
    layout = Layout(state_dir)
    existing = running_state(layout)
    if existing is not None and (existing.real_node or not with_real_node):
        log(f"cluster already running in {state_dir}")
        return existing
    if existing is not None:
        log(f"the cluster in {state_dir} has no real node: starting it again with one")
    if with_real_node:
        problems = real_node.missing_prerequisites()
        if problems:
            raise ClusterError("a real node needs " + ", ".join(problems))

    build_started = time.monotonic()
    binaries = build.ensure_binaries()
    build_seconds = time.monotonic() - build_started
    for attempt in range(1, _START_ATTEMPTS + 1):
        try:
            return _start_once(
                layout, binaries, node_set, die_with_parent, with_real_node, timeout, log, build_seconds
            )
        except (real_node.RealNodeError, images.ImageError) as error:
            raise ClusterError(str(error)) from None
        except PortInUseError as conflict:
            if attempt == _START_ATTEMPTS:
                raise
            log(f"port taken while starting, trying again with other ports: {str(conflict).splitlines()[0]}")
    raise AssertionError("unreachable")


def _start_once(
    layout: Layout,
    binaries: dict[str, Path],
    node_set: Path,
    die_with_parent: bool,
    with_real_node: bool,
    timeout: float,
    log: Log,
    build_seconds: float,
) -> ClusterState:
    started = time.monotonic()
    _prepare_state_dir(layout, log)
    manifests = node_manifests(load_node_set(node_set))
    names = ["etcd", "etcd-peer", "apiserver", "controller-manager", "scheduler", "kwok"]
    if with_real_node:
        names += ["kubelet-healthz", "kube-proxy-healthz", "kube-proxy-metrics"]
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    url = f"https://127.0.0.1:{ports['apiserver']}"
    state = ClusterState(
        apiserver_url=url,
        ports=ports,
        node_names=[m["metadata"]["name"] for m in manifests],
        real_node=with_real_node,
    )
    state.timings["build_seconds"] = round(build_seconds, 2)

    clients = [_ADMIN, _CONTROLLER_MANAGER, _SCHEDULER, _KWOK]
    if with_real_node:
        clients += [_KUBELET, _KUBE_PROXY, _APISERVER_KUBELET_CLIENT, _FRONT_PROXY]
        real_node.claim_host(layout)
        real_node.prepare_network()
    pki = generate_pki(
        layout.pki,
        service_ip=SERVICE_IP,
        clients=clients,
        extra_ips=(real_node.NODE_IP,) if with_real_node else (),
    )
    _write_kubeconfigs(layout, pki, url)

    def launch(name: str, argv: list[str]) -> None:
        state.processes.append(
            spawn(name, argv, layout.logs / f"{name}.log", die_with_parent=die_with_parent)
        )
        state.save(layout)  # recorded at once, so `down` can stop it even if `up` dies next

    def wait(key: str, what: str, ready: Callable[[], bool]) -> None:
        _wait_until(what, ready, state, timeout)
        state.timings[f"{key}_ready_seconds"] = round(time.monotonic() - started, 2)

    insecure = insecure_context()
    expected_nodes = set(state.node_names)
    try:
        # The apiserver retries etcd while it starts, so both start at once.
        launch("etcd", _etcd_argv(binaries["etcd"], layout, ports))
        launch(
            "kube-apiserver",
            _apiserver_argv(binaries["kube-apiserver"], layout, pki, ports, with_real_node=with_real_node),
        )
        wait("etcd", "etcd /health", lambda: probe(f"http://127.0.0.1:{ports['etcd']}/health"))
        client = admin_client(layout, state)
        wait("apiserver", "kube-apiserver /readyz", lambda: client.get("/readyz").status == 200)

        launch(
            "kube-controller-manager",
            _controller_manager_argv(binaries["kube-controller-manager"], layout, pki, ports),
        )
        launch("kube-scheduler", _scheduler_argv(binaries["kube-scheduler"], layout, ports))
        launch("kwok", _kwok_argv(binaries["kwok"], layout, ports))
        _register_nodes(client, manifests)

        wait(
            "controller_manager",
            "kube-controller-manager /healthz",
            lambda: probe(f"https://127.0.0.1:{ports['controller-manager']}/healthz", context=insecure),
        )
        wait(
            "scheduler",
            "kube-scheduler /healthz",
            lambda: probe(f"https://127.0.0.1:{ports['scheduler']}/healthz", context=insecure),
        )
        wait("kwok", "kwok /healthz", lambda: probe(f"http://127.0.0.1:{ports['kwok']}/healthz"))
        wait(
            "nodes",
            f"{len(expected_nodes)} nodes Ready and untainted by the node lifecycle controller",
            lambda: _ready_node_names(client) >= expected_nodes,
        )
        wait(
            "service_account",
            "service account default/default",
            lambda: client.get("/api/v1/namespaces/default/serviceaccounts/default").status == 200,
        )
        if with_real_node:
            _start_real_node(layout, pki, binaries, state, client, launch, wait)
    except BaseException:
        _stop_processes(layout, state)
        raise

    state.timings["start_seconds"] = round(time.monotonic() - started, 2)
    state.save(layout)
    return state


def _start_real_node(
    layout: Layout,
    pki: ClusterPki,
    binaries: dict[str, Path],
    state: ClusterState,
    client: ApiServerClient,
    launch: Callable[[str, list[str]], None],
    wait: Callable[[str, str, Callable[[], bool]], None],
) -> None:
    """containerd, then kubelet and kube-proxy; ready when the node is Ready and schedulable."""
    paths = real_node.NodePaths(layout)
    real_node.write_containerd_config(paths)
    real_node.write_cni_config(paths)
    launch("containerd", real_node.containerd_argv(paths))
    wait("containerd", "containerd answering on its socket", lambda: real_node.containerd_ready(paths))
    images.import_image(
        paths.containerd_socket,
        real_node.PAUSE_IMAGE,
        real_node.pause_image_tar(binaries["pause"]),
        log=lambda _: None,
    )

    real_node.write_kubelet_config(paths, ca=pki.ca.cert, healthz_port=state.ports["kubelet-healthz"])
    real_node.write_kube_proxy_config(
        paths,
        kubeconfig=layout.component_kubeconfig(_KUBE_PROXY.file_stem),
        healthz_port=state.ports["kube-proxy-healthz"],
        metrics_port=state.ports["kube-proxy-metrics"],
    )
    kubelet_kubeconfig = layout.component_kubeconfig(_KUBELET.file_stem)
    launch("kubelet", real_node.kubelet_argv(binaries["kubelet"], paths, kubelet_kubeconfig))
    launch("kube-proxy", real_node.kube_proxy_argv(binaries["kube-proxy"], paths))
    wait(
        "real_node",
        f"the real node {real_node.NODE_NAME} Ready",
        lambda: real_node.NODE_NAME in _ready_nodes(client, f"kubernetes.io/hostname={real_node.NODE_NAME}"),
    )


def _stop_processes(layout: Layout, state: ClusterState) -> None:
    stop(list(reversed(state.processes)))
    if state.real_node:
        real_node.teardown(layout, log=lambda _: None)


def restart(
    state_dir: Path,
    names: tuple[str, ...] = ("kube-apiserver", "etcd"),
    *,
    down_seconds: float = 0.0,
    die_with_parent: bool = False,
    timeout: float = 120.0,
) -> dict[str, float]:
    """Stop the named components in order (SIGTERM), keep them down ``down_seconds``, and start
    them again in reverse order with their very command lines: same ports, certificates and etcd
    data, so every client reconnects to the cluster it knew. Returns once the apiserver is ready,
    with the seconds it took to stop them (``stop``) and from their start to /readyz (``start``)."""
    layout = Layout(state_dir)
    state = ClusterState.load(layout)
    if state is None:
        raise ClusterError(f"no cluster recorded in {state_dir}")
    records = {record.name: record for record in state.processes}
    missing = [name for name in names if name not in records or not records[name].alive()]
    if missing:
        raise ClusterError(f"not running in {state_dir}: {', '.join(missing)}")
    argvs = {
        name: Path(f"/proc/{records[name].pid}/cmdline").read_bytes().split(b"\0")[:-1] for name in names
    }
    began = time.monotonic()
    stop([records[name] for name in names])
    stopped = time.monotonic()
    time.sleep(down_seconds)
    starting = time.monotonic()
    for name in reversed(names):
        argv = [part.decode() for part in argvs[name]]
        started = spawn(name, argv, records[name].log, die_with_parent=die_with_parent)
        state.processes = [started if record.name == name else record for record in state.processes]
        state.save(layout)
    client = admin_client(layout, state)
    _wait_until(
        "kube-apiserver /readyz after a restart", lambda: client.get("/readyz").status == 200, state, timeout
    )
    return {"stop": stopped - began, "start": time.monotonic() - starting}


def stop_cluster(state_dir: Path) -> bool:
    """Stop exactly the processes recorded in ``state_dir`` and delete it. False if none was there."""
    layout = Layout(state_dir)
    state = ClusterState.load(layout)
    if state is not None:
        _stop_processes(layout, state)
    if not layout.root.exists():
        return False
    if not layout.marker.exists():
        raise ClusterError(f"{layout.root} is not a sageport cluster directory; leaving it alone")
    shutil.rmtree(layout.root)
    return True


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int | None
    healthy: bool
    detail: str = ""


def status_line(component: ComponentStatus) -> str:
    """One line of `status`: mark, name, pid, where it answers."""
    pid = "" if component.pid is None else f"pid {component.pid}"
    return f"{'ok  ' if component.healthy else 'DOWN'} {component.name:<24} {pid:<11} {component.detail}"


def health(state_dir: Path) -> list[ComponentStatus]:
    """One line per component: is the recorded process alive, does its health endpoint answer."""
    layout = Layout(state_dir)
    state = ClusterState.load(layout)
    if state is None:
        return []
    insecure = insecure_context()
    endpoints = {
        "etcd": (f"http://127.0.0.1:{state.ports['etcd']}/health", None),
        "kube-controller-manager": (
            f"https://127.0.0.1:{state.ports['controller-manager']}/healthz",
            insecure,
        ),
        "kube-scheduler": (f"https://127.0.0.1:{state.ports['scheduler']}/healthz", insecure),
        "kwok": (f"http://127.0.0.1:{state.ports['kwok']}/healthz", None),
    }
    if state.real_node:
        endpoints["kubelet"] = (f"http://127.0.0.1:{state.ports['kubelet-healthz']}/healthz", None)
        endpoints["kube-proxy"] = (f"http://127.0.0.1:{state.ports['kube-proxy-healthz']}/healthz", None)
    client = admin_client(layout, state)
    result: list[ComponentStatus] = []
    for record in state.processes:
        alive = record.alive()
        if not alive:
            result.append(ComponentStatus(record.name, record.pid, False, "not running"))
        elif record.name == "containerd":
            ok = real_node.containerd_ready(real_node.NodePaths(layout))
            result.append(
                ComponentStatus(
                    record.name, record.pid, ok, str(real_node.NodePaths(layout).containerd_socket)
                )
            )
        elif record.name == "kube-apiserver":
            try:
                ok = client.get("/readyz").status == 200
            except OSError:
                ok = False
            result.append(ComponentStatus(record.name, record.pid, ok, state.apiserver_url))
        else:
            url, context = endpoints[record.name]
            result.append(ComponentStatus(record.name, record.pid, probe(url, context=context), url))
    if state.real_node:
        try:
            ok = real_node.NODE_NAME in _ready_nodes(client, f"kubernetes.io/hostname={real_node.NODE_NAME}")
        except OSError:
            ok = False
        result.append(ComponentStatus("real node", None, ok, real_node.NODE_NAME))
    try:
        ready = _ready_node_names(client)
        expected = set(state.node_names)
        result.append(
            ComponentStatus(
                "nodes", None, ready >= expected, f"{len(ready & expected)}/{len(expected)} Ready"
            )
        )
    except OSError as error:
        result.append(ComponentStatus("nodes", None, False, str(error)))
    return result
