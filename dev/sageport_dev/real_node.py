"""One real Node beside the KWOK ones: kubelet, kube-proxy, containerd, runc and CNI plugins.

Pods scheduled here run for real (containerd + runc from Debian's packages); everything else
of the local cluster stays fake. The node is tainted ``sageport.io/local-node=true:NoSchedule``
so only pods that ask for it land here: the chart's own pods and variants on the ``local``
instance type (what SageMaker's SDK calls local mode).

Host facts this relies on (reference/test-cluster.md): root, cgroup v1 (kubelet needs
``failCgroupV1: false`` and the cgroupfs driver), iptables via nf_tables, bridges. Only one
real node can exist per machine: the bridge, its address range and the iptables rules are
the host's. ``teardown`` removes all of them again, also after a crash.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sageport_dev import build, oci
from sageport_dev.layout import Layout
from sageport_dev.mounts import mounts_below, unmount_below
from sageport_dev.processes import ProcessRecord, run_checked

NODE_NAME = "sageport-local"
BRIDGE = "sageport0"
POD_CIDR = "10.85.0.0/16"
NODE_IP = "10.85.0.1"  # the bridge's address: the node IP, and where pods reach the host
LOCAL_NODE_LABEL = ("sageport.io/local-node", "true")
LOCAL_NODE_TAINT = {"key": "sageport.io/local-node", "value": "true", "effect": "NoSchedule"}
PAUSE_IMAGE = f"docker.io/sageport/pause:{build.PAUSE_VERSION}"
CNI_BIN_DIR = Path("/usr/lib/cni")
REQUIRED_COMMANDS = ("containerd", "containerd-shim-runc-v2", "runc", "ctr", "iptables", "ip", "conntrack")
# Debian packages that provide REQUIRED_COMMANDS and the CNI plugins (installed by .ci/run).
DEBIAN_PACKAGES = ("containerd", "runc", "containernetworking-plugins", "iptables", "iproute2", "conntrack")

# Images survive the cluster: a second `make demo` imports nothing it imported before.
CONTAINERD_ROOT = build.CACHE_ROOT / "containerd-root"
_OWNER_FILE = Path("/run/sageport-real-node.owner")
_CGROUP_ROOT = Path("/sys/fs/cgroup")

Log = Callable[[str], None]


class RealNodeError(RuntimeError):
    """The real node cannot be set up here; the message says what is missing."""


@dataclass(frozen=True)
class NodePaths:
    """Where the real node's files live inside the cluster's state directory."""

    layout: Layout

    @property
    def root(self) -> Path:
        return self.layout.root / "node"

    @property
    def containerd_state(self) -> Path:
        return self.root / "containerd-state"

    @property
    def containerd_socket(self) -> Path:
        return self.root / "containerd.sock"

    @property
    def containerd_config(self) -> Path:
        return self.root / "containerd.toml"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni" / "net.d"

    @property
    def cni_data_dir(self) -> Path:
        return self.root / "cni" / "ipam"

    @property
    def kubelet_root(self) -> Path:
        return self.root / "kubelet"

    @property
    def kubelet_config(self) -> Path:
        return self.root / "kubelet.yaml"

    @property
    def kube_proxy_config(self) -> Path:
        return self.root / "kube-proxy.yaml"

    @property
    def pod_logs(self) -> Path:
        return self.root / "pod-logs"


# ---------------------------------------------------------------------------------------------
# checks


def missing_prerequisites() -> list[str]:
    """What this machine lacks for a real node; empty when it can run one."""
    problems: list[str] = []
    if os.geteuid() != 0:
        problems.append("root (bridges, iptables, cgroups and containerd need it)")
    path = [*os.environ.get("PATH", "").split(os.pathsep), "/usr/sbin", "/sbin"]
    for command in REQUIRED_COMMANDS:
        if not any(Path(d, command).is_file() for d in path):
            problems.append(f"the command {command}")
    for plugin in ("bridge", "host-local", "loopback", "portmap"):
        if not (CNI_BIN_DIR / plugin).is_file():
            problems.append(f"the CNI plugin {CNI_BIN_DIR / plugin}")
    if problems:
        problems.append(f"(on Debian: apt-get install {' '.join(DEBIAN_PACKAGES)})")
    return problems


def _run(argv: list[str], *, check: bool = True, input_text: str | None = None) -> str:
    return run_checked(argv, RealNodeError, check=check, input_text=input_text)


# ---------------------------------------------------------------------------------------------
# host network


@contextmanager
def _owner_lock() -> Iterator[None]:
    with open(f"{_OWNER_FILE}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _cluster_alive(root: Path) -> bool:
    """Is any process recorded in that cluster's state.json still running?"""
    try:
        state = json.loads((root / "state.json").read_text())
    except (OSError, ValueError):
        return False
    return any(ProcessRecord.from_json(item).alive() for item in state.get("processes", []))


def claim_host(layout: Layout) -> None:
    """Record this cluster as the machine's one real node; refuse if a live cluster holds it,
    and clear what a dead one left behind (a killed test run: pods, shims, bridge, rules)."""
    with _owner_lock():
        owner = _OWNER_FILE.read_text().strip() if _OWNER_FILE.exists() else ""
        if owner and owner != str(layout.root):
            if _cluster_alive(Path(owner)):
                raise RealNodeError(
                    f"the real node is in use by the cluster in {owner}; stop it first "
                    f"(python -m sageport_dev --dir {owner} down)"
                )
            _clear_host(Layout(Path(owner)))
        _OWNER_FILE.write_text(f"{layout.root}\n")


def _sysctl(key: str, value: str) -> None:
    Path("/proc/sys", *key.split(".")).write_text(value)


def prepare_network() -> None:
    """Forwarding on, bridged traffic through iptables (Services), and our bridge up."""
    _sysctl("net.ipv4.ip_forward", "1")
    bridge_nf = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
    if bridge_nf.exists():
        bridge_nf.write_text("1")
    if _run(["ip", "-o", "link", "show", BRIDGE], check=False).strip() == "":
        _run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    prefix = ipaddress.ip_network(POD_CIDR).prefixlen
    if f"{NODE_IP}/" not in _run(["ip", "-o", "addr", "show", "dev", BRIDGE]):
        _run(["ip", "addr", "add", f"{NODE_IP}/{prefix}", "dev", BRIDGE])
    _run(["ip", "link", "set", BRIDGE, "up"])


# ---------------------------------------------------------------------------------------------
# configuration files


def write_containerd_config(paths: NodePaths) -> None:
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    lines = [
        "version = 2",
        f'root = "{CONTAINERD_ROOT}"',
        f'state = "{paths.containerd_state}"',
        # Plugins that probe for tools or kernel features we don't have only add noise.
        'disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",'
        ' "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",'
        ' "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]',
        "[grpc]",
        f'  address = "{paths.containerd_socket}"',
        "[ttrpc]",
        f'  address = "{paths.containerd_socket}.ttrpc"',
        "[debug]",
        '  address = ""',
        "[metrics]",
        '  address = ""',
        f"[{cri}]",
        f'  sandbox_image = "{PAUSE_IMAGE}"',
        "  enable_cdi = false",
        # No CAP_SYS_RESOURCE here: the sandbox's oom_score_adj of -998 would fail runc.
        "  restrict_oom_score_adj = true",
        f"[{cri}.containerd]",
        '  snapshotter = "overlayfs"',
        '  default_runtime_name = "runc"',
        f"[{cri}.containerd.runtimes.runc]",
        '  runtime_type = "io.containerd.runc.v2"',
        f"[{cri}.containerd.runtimes.runc.options]",
        "  SystemdCgroup = false",
        f"[{cri}.cni]",
        f'  bin_dir = "{CNI_BIN_DIR}"',
        f'  conf_dir = "{paths.cni_conf_dir}"',
        "  max_conf_num = 1",
    ]
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.containerd_config.write_text("\n".join(lines) + "\n")


def write_cni_config(paths: NodePaths) -> None:
    network = ipaddress.ip_network(POD_CIDR)
    conflist = {
        "cniVersion": "1.0.0",
        "name": "sageport",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(paths.cni_data_dir),
                    "ranges": [
                        [
                            {
                                "subnet": str(network),
                                "rangeStart": str(network.network_address + 16),
                                "gateway": NODE_IP,
                            }
                        ]
                    ],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    paths.cni_conf_dir.mkdir(parents=True, exist_ok=True)
    (paths.cni_conf_dir / "10-sageport.conflist").write_text(json.dumps(conflist, indent=2) + "\n")


def write_kubelet_config(paths: NodePaths, *, ca: Path, healthz_port: int) -> None:
    config: dict[str, Any] = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # This VM has cgroup v1 only; kubelet 1.35+ refuses it unless told otherwise.
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "containerRuntimeEndpoint": f"unix://{paths.containerd_socket}",
        "address": NODE_IP,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca)},
        },
        "authorization": {"mode": "Webhook"},
        "registerWithTaints": [LOCAL_NODE_TAINT],
        "failSwapOn": False,
        "podLogsDir": str(paths.pod_logs),
        "resolvConf": "/etc/resolv.conf",
        "maxPods": 40,
        # The disk is shared with builds and caches: evict only when it is really full.
        "evictionHard": {"memory.available": "200Mi", "nodefs.available": "2%", "imagefs.available": "2%"},
        "imageGCHighThresholdPercent": 98,
        "imageGCLowThresholdPercent": 95,
        # Report status often: the demo waits on it.
        "nodeStatusUpdateFrequency": "4s",
        "syncFrequency": "10s",
        "serializeImagePulls": False,
    }
    paths.kubelet_config.write_text(yaml.safe_dump(config, sort_keys=False))


def write_kube_proxy_config(
    paths: NodePaths, *, kubeconfig: Path, healthz_port: int, metrics_port: int
) -> None:
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": NODE_NAME,
        "mode": "iptables",
        "clusterCIDR": POD_CIDR,
        "bindAddress": NODE_IP,
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        # Leave the host's conntrack sysctls alone.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }
    paths.kube_proxy_config.write_text(yaml.safe_dump(config, sort_keys=False))


def kubelet_argv(binary: Path, paths: NodePaths, kubeconfig: Path) -> list[str]:
    return [
        str(binary),
        f"--config={paths.kubelet_config}",
        f"--kubeconfig={kubeconfig}",
        f"--root-dir={paths.kubelet_root}",
        f"--cert-dir={paths.root / 'kubelet-certs'}",
        f"--hostname-override={NODE_NAME}",
        f"--node-ip={NODE_IP}",
        f"--node-labels={LOCAL_NODE_LABEL[0]}={LOCAL_NODE_LABEL[1]},node.kubernetes.io/instance-type=local",
        "--v=1",
    ]


def kube_proxy_argv(binary: Path, paths: NodePaths) -> list[str]:
    return [str(binary), f"--config={paths.kube_proxy_config}", "--v=1"]


def containerd_argv(paths: NodePaths) -> list[str]:
    return ["containerd", f"--config={paths.containerd_config}", "--log-level=warn"]


# ---------------------------------------------------------------------------------------------
# images


def ctr(paths: NodePaths, *args: str) -> list[str]:
    return ["ctr", f"--address={paths.containerd_socket}", "--namespace=k8s.io", *args]


def containerd_ready(paths: NodePaths) -> bool:
    if not paths.containerd_socket.exists():
        return False
    return subprocess.run(ctr(paths, "version"), capture_output=True).returncode == 0


def remove_images_except(paths: NodePaths, *, prefixes: Iterable[str], keep: Iterable[str]) -> list[str]:
    """Untag older builds of our images, so containerd's content (kept across clusters in the
    cache) does not grow with every code change; containerd collects the unreferenced layers.
    Containers still running from them keep their snapshots."""
    keep, prefixes = set(keep), tuple(prefixes)
    listed = _run(ctr(paths, "images", "list", "--quiet"), check=False).split()
    stale = [ref for ref in listed if ref.startswith(prefixes) and ref not in keep]
    if stale:
        _run(ctr(paths, "images", "remove", *stale), check=False)
    return stale


# ---------------------------------------------------------------------------------------------
# teardown


def _pids_in_pod_cgroups() -> set[int]:
    pids: set[int] = set()
    for controller in ("pids", "memory", "cpu", "freezer"):
        base = _CGROUP_ROOT / controller / "kubepods"
        if not base.is_dir():
            continue
        for procs in base.rglob("cgroup.procs"):
            with suppress(OSError):
                pids.update(int(p) for p in procs.read_text().split())
    return pids


def _pids_matching(fragment: str) -> set[int]:
    found: set[int] = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with suppress(OSError):
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if fragment in cmdline:
                found.add(int(proc.name))
    return found


def _kill(pids: set[int]) -> None:
    for pid in pids:
        with suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _remove_cgroups() -> None:
    for controller in _CGROUP_ROOT.iterdir():
        base = controller / "kubepods"
        if base.is_dir():
            for directory in sorted(base.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                if directory.is_dir():
                    with suppress(OSError):
                        directory.rmdir()
            with suppress(OSError):
                base.rmdir()


def _remove_iptables_chains(prefixes: tuple[str, ...]) -> None:
    """Delete the rules that jump to our chains, then the chains (CNI's and kube-proxy's)."""
    for table in ("nat", "filter", "mangle"):
        dump = _run(["iptables-save", "-t", table], check=False)
        chains = [line[1:].split()[0] for line in dump.splitlines() if line.startswith(":")]
        ours = [c for c in chains if c.startswith(prefixes)]
        for line in dump.splitlines():
            jumps_to_ours = any(f"-j {chain}" in line for chain in ours)
            if line.startswith("-A ") and not line.split()[1].startswith(prefixes) and jumps_to_ours:
                _run(["iptables", "-t", table, "-D", *shlex.split(line)[1:]], check=False)
        for chain in ours:
            _run(["iptables", "-t", table, "-F", chain], check=False)
        for chain in ours:
            _run(["iptables", "-t", table, "-X", chain], check=False)


def teardown(layout: Layout, log: Log = print) -> None:
    """Stop every pod, shim and mount of the real node and give the host its network back.

    Called after kubelet, kube-proxy and containerd have been stopped (or have died).
    Safe to call twice, and on a machine where none of it exists.
    """
    _clear_host(layout)
    with _owner_lock():
        if _OWNER_FILE.exists() and _OWNER_FILE.read_text().strip() == str(layout.root):
            _OWNER_FILE.unlink()
    log("real node torn down")


def leftovers(layout: Layout) -> list[str]:
    """What of a real node is still on the host: processes (its components and pods), mounts, the
    bridge. Empty after ``teardown``."""
    paths = NodePaths(layout)
    found = [f"process {pid}" for pid in sorted(_pids_in_pod_cgroups() | _pids_matching(f"{layout.root}/"))]
    found += [
        f"mount {point}"
        for point in mounts_below(paths.kubelet_root, paths.containerd_state, CONTAINERD_ROOT)
    ]
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        found.append(f"network bridge {BRIDGE}")
    return found


def _clear_host(layout: Layout) -> None:
    paths = NodePaths(layout)
    for _ in range(3):  # pods may fork while we kill them
        pids = _pids_in_pod_cgroups() | _pids_matching(f"{paths.root}/")
        if not pids:
            break
        _kill(pids)
        time.sleep(0.2)
    unmount_below(paths.kubelet_root, paths.containerd_state, CONTAINERD_ROOT)
    _remove_cgroups()
    for name in _run(["ip", "netns", "list"], check=False).split():
        if name.startswith("cni-"):
            _run(["ip", "netns", "delete", name], check=False)
    _run(["ip", "link", "delete", BRIDGE], check=False)
    _remove_iptables_chains(("KUBE-", "CNI-"))


# ---------------------------------------------------------------------------------------------
# the sandbox image


def pause_image_tar(pause_binary: Path) -> Path:
    """An OCI archive holding only our pause program, named PAUSE_IMAGE; built once, cached."""
    target = build.CACHE_ROOT / "images" / f"pause-{build.PAUSE_VERSION}.tar"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        root = Path(work, "root")
        root.mkdir()
        shutil.copy2(pause_binary, root / "pause")
        layer_path = Path(work, "layer.tar")
        with layer_path.open("wb") as out:
            layer = oci.Layer(layer_path, oci.write_layer(root, out), "sageport pause")
        config = oci.image_config(
            [layer], env={}, cmd=["/pause"], user="65535:65535", working_dir="/", labels={}
        )
        tmp = Path(work, "image.tar")
        with tmp.open("wb") as out:
            oci.write_image_layout(out, PAUSE_IMAGE, config, [layer])
        tmp.replace(target)
    return target
