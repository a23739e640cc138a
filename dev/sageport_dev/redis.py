"""A real Redis, Debian's ``redis-server``, as the queue of asynchronous inference.

``make up`` starts one next to the stack (on the node's bridge address, where pods reach it) and
the integration tests start their own on loopback. It runs the package's binary as our own child
process (never the package's service), configured for the queue (infra.md §2):

- ``appendonly yes`` with ``appendfsync everysec``: a reply goes out only after the append-only
  file's write reached the kernel, so a kill -9 of redis-server loses no accepted call (Debian's
  default, RDB only, lost everything in that test);
- ``requirepass``: a password (the chart's Secret holds it);
- everything under its own directory: the config, the AOF (``appendonlydir/``), its log.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from sageport_dev.processes import ProcessRecord, listening, spawn, stop, tail

PACKAGE: Final = "redis-server"  # hostdeps.REDIS_PACKAGE
_RECORD_FILE = "redis.json"
_CONFIG_FILE = "redis.conf"


class RedisError(RuntimeError):
    """redis-server is missing or did not start; the message says which and why."""


def binary() -> Path:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").is_file() else None
    )
    if found is None:
        raise RedisError(
            f"redis-server is not installed: `make host-deps` installs the Debian package {PACKAGE}"
        )
    return Path(found)


def config(root: Path, host: str, port: int, password: str) -> str:
    """redis.conf for the queue: AOF everysec, a password, no RDB snapshots, files in ``root``."""
    lines = [
        f"bind {host}",
        f"port {port}",
        "protected-mode yes",
        f"requirepass {password}",
        f"dir {root}",
        "appendonly yes",
        "appendfsync everysec",
        'save ""',
        "daemonize no",
        f"logfile {root / 'redis.log'}",
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class RedisServer:
    host: str
    port: int
    password: str
    root: Path
    process: ProcessRecord | None

    @property
    def url(self) -> str:
        """Without the password (it goes in its own variable and Secret)."""
        return f"redis://{self.host}:{self.port}/0"

    def client(self) -> Any:
        import redis

        return redis.Redis(host=self.host, port=self.port, password=self.password)

    def env(self) -> dict[str, str]:
        from sageport import contract

        return {contract.REDIS_URL_ENV: self.url, contract.REDIS_PASSWORD_ENV: self.password}

    def answers(self) -> bool:
        with contextlib.suppress(Exception):
            return bool(self.client().ping())
        return False


def running(root: Path) -> RedisServer | None:
    """The redis-server an earlier :func:`start` left in ``root``, if it still answers."""
    with contextlib.suppress(FileNotFoundError, KeyError, ValueError):
        saved = json.loads((root / _RECORD_FILE).read_text())
        server = RedisServer(
            saved["host"], saved["port"], saved["password"], root, ProcessRecord.from_json(saved["process"])
        )
        if server.process is not None and server.process.alive() and server.answers():
            return server
    return None


def start(
    root: Path,
    *,
    host: str,
    port: int,
    die_with_parent: bool,
    password: str | None = None,
    timeout: float = 30.0,
) -> RedisServer:
    """Start redis-server on ``host:port`` with its files in ``root`` (a restart on the same root
    replays the AOF and keeps the password), or return the one already running there."""
    root = root.absolute()
    existing = running(root)
    if existing is not None:
        return existing
    # A server killed a moment ago may still have a forked child (an AOF rewrite) holding its
    # listening socket: give the port a few seconds to come free before calling it taken.
    deadline = time.monotonic() + 5.0
    while listening(host, port):
        if time.monotonic() > deadline:
            raise RedisError(f"{host}:{port} is taken by a process this run did not start: stop it first")
        time.sleep(0.1)
    root.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError, KeyError, ValueError):
        password = password or json.loads((root / _RECORD_FILE).read_text())["password"]
    password = password or secrets.token_urlsafe(24)
    conf = root / _CONFIG_FILE
    conf.write_text(config(root, host, port, password))
    conf.chmod(0o600)  # holds the password
    record = spawn(
        "redis-server", [str(binary()), str(conf)], root / "redis.stdout", die_with_parent=die_with_parent
    )
    server = RedisServer(host, port, password, root, record)
    deadline = time.monotonic() + timeout
    while not server.answers():
        if not record.alive() or time.monotonic() > deadline:
            stop([record])
            raise RedisError(
                f"redis-server did not start on {host}:{port}; {root / 'redis.log'}:\n{tail(root / 'redis.log')}"
            )
        time.sleep(0.05)
    saved = {"host": host, "port": port, "password": password, "process": record.to_json()}
    (root / _RECORD_FILE).write_text(json.dumps(saved))
    (root / _RECORD_FILE).chmod(0o600)
    return server


def stop_server(root: Path) -> list[str]:
    """Stop the redis-server recorded in ``root`` (SIGTERM: it flushes the AOF); return what is
    left of it. Empty when none ran."""
    try:
        saved = json.loads((root / _RECORD_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return []
    record = ProcessRecord.from_json(saved["process"])
    stop([record], grace_seconds=15)
    left = [f"redis-server process {record.pid}"] if record.alive() else []
    if listening(saved["host"], saved["port"]):
        left.append(f"something still listening on {saved['host']}:{saved['port']}")
    return left
