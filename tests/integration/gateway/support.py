"""Start real processes for the gateway tests: fake model containers and the gateway itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sageport_dev import wire
from sageport_dev.processes import free_port, wait_http

BACKEND_SCRIPT = Path(__file__).with_name("backend.py")
GATEWAY_COMMAND = [str(Path(sys.executable).with_name("sageport-gateway"))]
ROUTER_COMMAND = [str(Path(sys.executable).with_name("sageport-router"))]
ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG"


@dataclass
class Process:
    popen: subprocess.Popen[str]
    url: str

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode


def start_backend(name: str, *extra: str) -> Process:
    popen = subprocess.Popen(
        [sys.executable, str(BACKEND_SCRIPT), "--name", name, *extra],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert popen.stdout is not None
    line = popen.stdout.readline()
    if not line.startswith("PORT "):
        popen.kill()
        raise RuntimeError(f"backend {name} did not start: {line!r}")
    host = extra[extra.index("--host") + 1] if "--host" in extra else "127.0.0.1"
    return Process(popen, f"http://{host}:{int(line.split()[1])}")


def start_gateway(
    args: Sequence[str],
    log_path: Path | None = None,
    ready_timeout: float = 20.0,
    env: Mapping[str, str] | None = None,
) -> Process:
    port = free_port()
    log_file = open(log_path, "w") if log_path is not None else subprocess.DEVNULL  # noqa: SIM115
    popen = subprocess.Popen(
        [*GATEWAY_COMMAND, "--host", "127.0.0.1", "--port", str(port), *args],
        stderr=log_file,
        stdout=log_file,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/ping", popen, timeout=ready_timeout)
    return Process(popen, url)


def runtime_client(
    endpoint_url: str,
    access_key: str = ACCESS_KEY,
    secret_key: str = SECRET_KEY,
    read_timeout: float = 70.0,
):  # type: ignore[no-untyped-def]
    """No retries: every test sees the gateway's first answer."""
    return wire.runtime_client(endpoint_url, access_key, secret_key, attempts=1, read_timeout=read_timeout)


def start_router(containers: Mapping[str, str], *extra: str, ready: bool = True) -> Process:
    """The Direct router on a free port, in front of ``containers`` (hostname -> backend URL);
    ``ready``: wait until its /ping answers 200 (every container ready)."""
    port = free_port()
    targets = [f"--container={host}={url.rsplit(':', 1)[1]}" for host, url in containers.items()]
    popen = subprocess.Popen(
        [*ROUTER_COMMAND, "--host", "127.0.0.1", "--port", str(port), *targets, *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    if ready:
        wait_http(url + "/ping", popen, timeout=20.0)
    else:
        wait_http(url + "/metrics", popen, timeout=20.0)
    return Process(popen, url)
