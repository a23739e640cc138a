"""Process-level fixtures: the real ``sageport-server`` started as a subprocess on a free port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sageport_dev.processes import free_port

REPO = Path(__file__).resolve().parents[3]
SERVER = [sys.executable, "-m", "sageport.server"]


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Response:
        request = urllib.request.Request(self.base + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=60) as reply:
                return Response(reply.status, {k.lower(): v for k, v in reply.headers.items()}, reply.read())
        except urllib.error.HTTPError as error:
            return Response(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_until(
        self, predicate: Callable[[Response], bool], path: str = "/ping", timeout: float = 120
    ) -> Response:
        deadline = time.monotonic() + timeout
        last: Response | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                last = self.request("GET", path)
                if predicate(last):
                    return last
            except OSError:
                pass  # not listening yet
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting on {path} (last: {last}):\n{self.log()}")


class Servers:
    """Starts server processes and stops every one of them (SIGTERM, then SIGKILL) at teardown."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[Server] = []

    def __call__(self, *args: str, env: dict[str, str] | None = None, ready: bool = True) -> Server:
        port = free_port()
        log_path = self.logs / f"server-{len(self.started)}-{port}.log"
        environment = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO / "runtime"), str(REPO / "operator")]),
            "SAGEMAKER_BIND_TO_PORT": str(port),
            "SAGEPORT_BIND_HOST": "127.0.0.1",
            **(env or {}),
        }
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [*SERVER, *args], env=environment, stdout=log, stderr=subprocess.STDOUT
            )
        server = Server(process, port, log_path)
        self.started.append(server)
        if ready:
            server.wait_until(lambda r: r.status == 200)
        return server

    def stop_all(self) -> None:
        for server in self.started:
            if server.process.poll() is None:
                server.process.send_signal(signal.SIGTERM)
        for server in self.started:
            try:
                server.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()


@pytest.fixture
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    servers = Servers(tmp_path_factory.mktemp("logs"))
    yield servers
    servers.stop_all()


@pytest.fixture(scope="module")
def start_module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    servers = Servers(tmp_path_factory.mktemp("logs"))
    yield servers
    servers.stop_all()
