"""Start, identify and stop the control-plane processes, each by its own pid.

A pid alone is not an identity (pids get reused), so every record also keeps the process's
start time from ``/proc/<pid>/stat``; ``stop`` signals a pid only while both still match.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import re
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_PR_SET_PDEATHSIG = 1
_LOWEST_PORT = 20000  # above the well-known and most registered service ports
_ERROR_LINE = re.compile(r"^(E\d{4} |Error:|panic:|fatal)|\"level\":\"ERROR\"", re.IGNORECASE)


@dataclass(frozen=True)
class ProcessRecord:
    """One process the harness started: enough to find its log and to stop exactly it."""

    name: str
    pid: int
    start_ticks: int
    log: Path

    def alive(self) -> bool:
        return _start_ticks(self.pid) == self.start_ticks

    def to_json(self) -> dict[str, str | int]:
        return {"name": self.name, "pid": self.pid, "start_ticks": self.start_ticks, "log": str(self.log)}

    @classmethod
    def from_json(cls, data: dict[str, str | int]) -> ProcessRecord:
        return cls(
            name=str(data["name"]),
            pid=int(data["pid"]),
            start_ticks=int(data["start_ticks"]),
            log=Path(str(data["log"])),
        )


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may contain spaces and parentheses: split after its last ")".
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])  # field 22 of the whole line: starttime


# Loaded here, not in the forked child: dlopen between fork and exec can deadlock.
_LIBC = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL it when the process that started it dies.

    SIGKILL, not SIGTERM: all components would get it at once, and a terminating apiserver
    whose etcd is already gone waits for it indefinitely. The state is thrown away anyway.
    """
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn(
    name: str, argv: Sequence[str], log: Path, *, die_with_parent: bool, env: Mapping[str, str] | None = None
) -> ProcessRecord:
    """Start ``argv`` in its own session with output to ``log`` (``env``: added to ours).

    ``die_with_parent`` ties its life to ours (a test session that is killed leaves no
    control plane behind); the CLI's ``up`` leaves it off so the cluster outlives the command.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    preexec: Callable[[], None] | None = _die_with_parent if die_with_parent else None
    with log.open("ab") as out:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=preexec,
            env={**os.environ, **env} if env else None,
        )
    ticks = _start_ticks(process.pid)
    if ticks is None:
        raise RuntimeError(f"{name} exited at once; see {log}:\n{tail(log)}")
    return ProcessRecord(name=name, pid=process.pid, start_ticks=ticks, log=log)


def stop(records: Sequence[ProcessRecord], *, grace_seconds: float = 10.0) -> None:
    """Stop each still-running record in the given order: SIGTERM, then SIGKILL after the grace.

    One at a time, so the apiserver can still reach etcd while it shuts down (signalled
    together, it waits for etcd until killed).
    """
    for record in records:
        if not record.alive():
            _reap(record)
            continue
        _signal(record.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        while record.alive() and time.monotonic() < deadline:
            _reap(record)
            time.sleep(0.02)
        if record.alive():
            _signal(record.pid, signal.SIGKILL)
        _reap(record)


def _signal(pid: int, signum: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, signum)


def _reap(record: ProcessRecord) -> None:
    """Collect the exit status of our own child, so it doesn't linger as a zombie."""
    # Not our child if an earlier `up` started it: then init reaps it.
    with suppress(ChildProcessError):
        os.waitpid(record.pid, os.WNOHANG)


def tail(log: Path, lines: int = 25) -> str:
    """The log's last lines, preceded by its first error lines (a usage dump hides them at the top)."""
    try:
        text = log.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log)"
    last = text[-lines:]
    errors = [line for line in text[:-lines] if _ERROR_LINE.search(line)][:5]
    return "\n".join([*errors, "...", *last] if errors else last)


def terminate(process: subprocess.Popen[Any], grace_seconds: float = 10.0) -> None:
    """SIGTERM a child we started, SIGKILL it if it is still there after ``grace_seconds``."""
    process.terminate()
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_checked(
    argv: Sequence[str],
    error: type[Exception] = RuntimeError,
    *,
    check: bool = True,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
) -> str:
    """Run a command to its end and return its stdout; when it fails (and ``check``), raise
    ``error`` naming the command, its exit status and the last lines of what it printed."""
    result = subprocess.run(
        list(argv), cwd=cwd, env=env, input=input_text, capture_output=True, text=True, check=False
    )
    if check and result.returncode != 0:
        said = "\n".join((result.stdout + result.stderr).strip().splitlines()[-30:])
        raise error(f"{' '.join(argv)} exited {result.returncode}:\n{said}")
    return result.stdout


def wait_http(url: str, process: subprocess.Popen[Any] | None = None, timeout: float = 30.0) -> None:
    """Poll ``url`` until it answers 2xx; fail early if ``process`` (the server) exits.

    Raises RuntimeError naming the URL, and the exit code when the process died.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {process.returncode} before answering")
        with suppress(OSError), urllib.request.urlopen(url, timeout=2):
            return  # urlopen raises (an OSError) for anything but 2xx
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer 2xx within {timeout:.0f} s")


def listening(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on ``host:port`` (a server of ours, or another's)."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.3):
        return True
    return False


def free_port() -> int:
    """One free loopback port (see :func:`free_ports`)."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports, free a moment ago, below the kernel's ephemeral range.

    Outgoing connections take their local port from the ephemeral range; choosing ours below it
    means a busy machine's clients cannot grab one between our choice and the server's bind.
    """
    ephemeral_low = _ephemeral_range_start()
    candidates = random.sample(
        range(_LOWEST_PORT, ephemeral_low), k=min(count * 20, ephemeral_low - _LOWEST_PORT)
    )
    chosen: list[int] = []
    for port in candidates:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        chosen.append(port)
        if len(chosen) == count:
            return chosen
    raise RuntimeError(f"no {count} free ports between {_LOWEST_PORT} and {ephemeral_low}")


def _ephemeral_range_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def eventually(
    check: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.2, what: str = ""
) -> T:
    """Poll ``check`` until it returns something truthy; fail with the last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout:.0f} s waiting for {what or check.__name__}; last: {last!r}"
    )
