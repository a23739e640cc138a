"""KEDA for the local stack: its CRDs and its operator, run out of cluster on this machine.

The operator (``keda-operator``, built from KEDA's Go module by build.py) talks to the API server
with the admin kubeconfig, watches ScaledObjects in every namespace and scales their targets
through the /scale subresource: 0 <-> 1 needs nothing else. It connects to the gateway's
external-push scaler through a Service's cluster IP (kube-proxy routes it from this machine).
Its gRPC metrics service insists on a certificate: a self-signed one for localhost is made.

The metrics API server (``keda-adapter``, for 1 <-> N through the HPA) runs on this machine too:
it serves ``external.metrics.k8s.io`` on the node IP (the apiserver reaches it there through
the aggregation layer, see stack.start_keda) and asks the operator's gRPC service for each
value, with the operator's certificate as its client certificate.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import shutil
import socket
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sageport_dev import build
from sageport_dev.apiserver import insecure_context, probe
from sageport_dev.processes import ProcessRecord, free_ports, spawn, stop, tail

NAMESPACE = "keda"  # KEDA_CLUSTER_OBJECT_NAMESPACE: where cluster-scoped trigger secrets would live
_RECORD_FILE = "keda.json"
_ADAPTER_RECORD_FILE = "keda-adapter.json"
# The Service (without selector) the external metrics APIService names; the apiserver checks the
# metrics API server's certificate against <service>.<namespace>.svc.
METRICS_SERVICE = "keda-metrics-apiserver"


class KedaError(RuntimeError):
    """KEDA did not start; the message has the end of its log."""


@dataclass(frozen=True)
class KedaOperator:
    root: Path
    health_url: str
    process: ProcessRecord | None

    def ready(self) -> bool:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{self.health_url}/readyz", timeout=2) as answer,
        ):
            return bool(answer.status == 200)
        return False


def crd_files() -> list[Path]:
    files = build.keda_crds()
    if not files:
        raise KedaError(f"no KEDA CRDs next to {build.Binary('keda-operator', build.KEDA_VERSION).path}")
    return files


def _self_signed(directory: Path, ips: tuple[str, ...] = ("127.0.0.1",), names: tuple[str, ...] = ()) -> None:
    """tls.crt, tls.key and ca.crt (the same certificate) for localhost, ``names`` and ``ips``,
    as KEDA's BUILD.md says."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    *(x509.DNSName(name) for name in ("localhost", *names)),
                    *(x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (directory / "tls.crt").write_bytes(pem)
    (directory / "ca.crt").write_bytes(pem)
    key_file = directory / "tls.key"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_file.chmod(0o600)


def running(root: Path) -> KedaOperator | None:
    """The operator an earlier :func:`start` left in ``root``, if it is alive and ready."""
    with contextlib.suppress(FileNotFoundError, KeyError, ValueError):
        saved = json.loads((root / _RECORD_FILE).read_text())
        operator = KedaOperator(root, saved["health_url"], ProcessRecord.from_json(saved["process"]))
        if operator.process is not None and operator.process.alive() and operator.ready():
            return operator
    return None


def start(root: Path, kubeconfig: Path, *, die_with_parent: bool, timeout: float = 60.0) -> KedaOperator:
    """Start KEDA's operator with its files in ``root`` (or return the one running there)."""
    root = root.absolute()
    existing = running(root)
    if existing is not None:
        return existing
    _self_signed(root / "certs")
    metrics, health, grpc = free_ports(3)
    health_url = f"http://127.0.0.1:{health}"
    argv = [
        str(build.Binary("keda-operator", build.KEDA_VERSION).path),
        f"--kubeconfig={kubeconfig}",
        f"--metrics-bind-address=127.0.0.1:{metrics}",
        f"--health-probe-bind-address=127.0.0.1:{health}",
        f"--metrics-service-bind-address=127.0.0.1:{grpc}",
        f"--cert-dir={root / 'certs'}",
        "--leader-elect=false",
        "--zap-log-level=info",
    ]
    env = {
        "KEDA_CLUSTER_OBJECT_NAMESPACE": NAMESPACE,
        "WATCH_NAMESPACE": "",  # all namespaces
        "POD_NAMESPACE": NAMESPACE,
        "KUBECONFIG": str(kubeconfig),
    }
    log = root / "keda-operator.log"
    record = spawn("keda-operator", argv, log, die_with_parent=die_with_parent, env=env)
    operator = KedaOperator(root, health_url, record)
    deadline = time.monotonic() + timeout
    while not operator.ready():
        if not record.alive() or time.monotonic() > deadline:
            stop([record])
            raise KedaError(f"KEDA's operator did not become ready on {health_url}; {log}:\n{tail(log)}")
        time.sleep(0.2)
    (root / _RECORD_FILE).write_text(
        json.dumps({"health_url": health_url, "grpc_port": grpc, "process": record.to_json()})
    )
    return operator


@dataclass(frozen=True)
class KedaAdapter:
    """KEDA's metrics API server: ``address`` (host, port) is where the apiserver reaches it."""

    root: Path
    address: tuple[str, int]
    process: ProcessRecord | None

    @property
    def ca_bundle(self) -> bytes:
        """The certificate it serves (self-signed): the APIService's caBundle."""
        return (self.root / "adapter-certs" / "ca.crt").read_bytes()

    def ready(self) -> bool:
        host, port = self.address
        return probe(f"https://{host}:{port}/readyz", context=insecure_context())


def running_adapter(root: Path) -> KedaAdapter | None:
    with contextlib.suppress(FileNotFoundError, KeyError, ValueError):
        saved = json.loads((root / _ADAPTER_RECORD_FILE).read_text())
        adapter = KedaAdapter(root, (saved["host"], saved["port"]), ProcessRecord.from_json(saved["process"]))
        if adapter.process is not None and adapter.process.alive() and adapter.ready():
            return adapter
    return None


def start_adapter(
    root: Path, kubeconfig: Path, host: str, *, die_with_parent: bool, timeout: float = 60.0
) -> KedaAdapter:
    """Start KEDA's metrics API server on ``host`` (the operator in ``root`` must run already)."""
    root = root.absolute()
    existing = running_adapter(root)
    if existing is not None:
        return existing
    try:
        grpc = int(json.loads((root / _RECORD_FILE).read_text())["grpc_port"])
    except KeyError:
        raise KedaError(
            f"KEDA's operator in {root} was started by an older `make up`, which did not record its gRPC "
            "port: run `make down`, then `make up`"
        ) from None
    _self_signed(root / "adapter-certs", (host,), (f"{METRICS_SERVICE}.{NAMESPACE}.svc",))
    port, metrics = free_ports(2)
    serving = root / "adapter-certs"
    argv = [
        str(build.Binary("keda-adapter", build.KEDA_VERSION).path),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--lister-kubeconfig={kubeconfig}",  # else it looks for the in-cluster configuration
        f"--bind-address={host}",
        f"--secure-port={port}",
        f"--tls-cert-file={serving / 'tls.crt'}",
        f"--tls-private-key-file={serving / 'tls.key'}",
        # Its gRPC client certificate and CA come from --cert-dir: the operator's own pair.
        f"--cert-dir={root / 'certs'}",
        f"--metrics-service-address=127.0.0.1:{grpc}",
        f"--port={metrics}",
        "--profiling=false",
    ]
    env = {
        "KEDA_CLUSTER_OBJECT_NAMESPACE": NAMESPACE,
        "WATCH_NAMESPACE": "",
        "POD_NAMESPACE": NAMESPACE,
        "KUBECONFIG": str(kubeconfig),
    }
    log = root / "keda-adapter.log"
    record = spawn("keda-adapter", argv, log, die_with_parent=die_with_parent, env=env)
    adapter = KedaAdapter(root, (host, port), record)
    deadline = time.monotonic() + timeout
    while not adapter.ready():
        if not record.alive() or time.monotonic() > deadline:
            stop([record])
            raise KedaError(
                f"KEDA's metrics API server did not become ready on {host}:{port}; {log}:\n{tail(log)}"
            )
        time.sleep(0.2)
    (root / _ADAPTER_RECORD_FILE).write_text(
        json.dumps({"host": host, "port": port, "process": record.to_json()})
    )
    return adapter


def stop_operator(root: Path) -> list[str]:
    """Stop the metrics API server and the operator recorded in ``root``; return what is left of
    them (empty when none ran)."""
    left = []
    with contextlib.suppress(FileNotFoundError, ValueError):
        adapter = ProcessRecord.from_json(json.loads((root / _ADAPTER_RECORD_FILE).read_text())["process"])
        stop([adapter], grace_seconds=10)
        if adapter.alive():
            left.append(f"keda-adapter process {adapter.pid}")
    try:
        saved = json.loads((root / _RECORD_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return left
    record = ProcessRecord.from_json(saved["process"])
    stop([record], grace_seconds=10)
    left += [f"keda-operator process {record.pid}"] if record.alive() else []
    port = int(saved["health_url"].rsplit(":", 1)[1])
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.3):
        left.append(f"something still listening on KEDA's health port {port}")
    if not left:
        shutil.rmtree(root, ignore_errors=True)
    return left
