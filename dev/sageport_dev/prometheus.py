"""A real Prometheus, Debian's ``prometheus`` package, as the alarm source of Endpoint updates.

An alarm of ``autoRollbackConfiguration`` is a Prometheus alerting rule of the same name (see
sageport.operator.alarms). ``make up PROMETHEUS=1`` starts one next to the stack (stack.py), and
the alarm tests start their own. It runs the package's binary as our own child process, like
the stack's other servers (never the package's service, which may or may not have started):

- scrape and rule evaluation every :data:`INTERVAL_SECONDS`, so an alarm fires within seconds;
- ``--web.enable-lifecycle``, so ``POST /-/reload`` loads new rules without a restart;
- everything under its own directory: the config, the TSDB (``data/``), its log, and the rule
  files (``rules/*.yaml``) that :meth:`PrometheusServer.install_rules` checks with promtool,
  copies in and reloads;
- scrape jobs chosen by the caller, with fixed targets (:func:`static_scrape_config`): Debian
  builds Prometheus without Kubernetes discovery ("due to the insane amount of dependencies in
  their client library", NEWS.Debian), so the stack gives it a Service address (stack.py).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from sageport_dev.hostdeps import PROMETHEUS_PACKAGE
from sageport_dev.processes import ProcessRecord, listening, spawn, stop, tail

INTERVAL_SECONDS: Final = 5
_RECORD_FILE = "prometheus.json"
_CONFIG_FILE = "prometheus.yml"
_RULE_SUFFIXES = (".yaml", ".yml")


class PrometheusError(RuntimeError):
    """Prometheus is missing, did not start, or refused rules; the message says which and why."""


def binary(name: str = "prometheus") -> Path:
    """The package's ``prometheus`` or ``promtool``; missing means the host deps are not installed."""
    found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").is_file() else None)
    if found is None:
        raise PrometheusError(
            f"{name} is not installed: `make host-deps` installs the Debian package {PROMETHEUS_PACKAGE}"
        )
    return Path(found)


# ---------------------------------------------------------------------------------------------
# configuration (pure)


def static_scrape_config(job: str, targets: Sequence[str]) -> dict[str, Any]:
    """A job scraping ``host:port`` targets at ``/metrics``."""
    return {"job_name": job, "static_configs": [{"targets": list(targets)}]}


def config(
    scrape_configs: Sequence[dict[str, Any]], rules_dir: Path, interval_seconds: int = INTERVAL_SECONDS
) -> dict[str, Any]:
    """prometheus.yml: one interval for scraping and rule evaluation, rules from ``rules_dir``, no
    Alertmanager (the operator reads firing alerts from Prometheus itself)."""
    interval = f"{interval_seconds}s"
    return {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "evaluation_interval": interval,
        },
        "rule_files": [str(rules_dir / f"*{suffix}") for suffix in _RULE_SUFFIXES],
        "scrape_configs": list(scrape_configs),
    }


def argv(prometheus: Path, root: Path, listen: str) -> list[str]:
    return [
        str(prometheus),
        f"--config.file={root / _CONFIG_FILE}",
        f"--storage.tsdb.path={root / 'data'}",
        "--storage.tsdb.retention.time=1d",
        f"--web.listen-address={listen}",
        "--web.enable-lifecycle",
    ]


# ---------------------------------------------------------------------------------------------
# the server


@dataclass(frozen=True)
class PrometheusServer:
    """A Prometheus this module started in ``root``; ``url`` is its base URL."""

    url: str
    root: Path
    process: ProcessRecord | None

    @property
    def rules_dir(self) -> Path:
        return self.root / "rules"

    def install_rules(self, source: Path) -> Path:
        """Check ``source`` with promtool, copy it into the rules directory (same name replaces)
        and reload; return the installed file. Raises PrometheusError with promtool's or
        Prometheus' own words."""
        if source.suffix not in _RULE_SUFFIXES:
            raise PrometheusError(f"{source}: a rule file's name ends in .yaml or .yml")
        checked = subprocess.run(
            [str(binary("promtool")), "check", "rules", str(source)], capture_output=True, text=True
        )
        if checked.returncode != 0:
            raise PrometheusError(
                f"{source} is no valid rule file:\n{(checked.stdout + checked.stderr).strip()}"
            )
        target = self.rules_dir / source.name
        staged = self.rules_dir / f".{source.name}.new"  # no rule suffix: never loaded half-written
        shutil.copyfile(source, staged)
        staged.replace(target)
        self.reload()
        return target

    def remove_rules(self, name: str) -> None:
        """Remove an installed rule file by name (no error if absent) and reload."""
        (self.rules_dir / Path(name).name).unlink(missing_ok=True)
        self.reload()

    def reload(self) -> None:
        """``POST /-/reload``: config and rules from disk now; Prometheus' error if it refuses."""
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30):
                return
        except urllib.error.HTTPError as error:
            raise PrometheusError(
                f"{self.url} refused to reload: {error.read().decode(errors='replace')}"
            ) from None
        except OSError as error:
            raise PrometheusError(f"{self.url} did not reload: {error}") from None

    def ready(self) -> bool:
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as answer:
            return bool(answer.status == 200)
        return False

    def get(self, path: str) -> Any:
        """The ``data`` of a ``GET /api/v1/...`` answer (for checks and tests)."""
        with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as answer:
            return json.loads(answer.read())["data"]


def running(root: Path) -> PrometheusServer | None:
    """The Prometheus an earlier :func:`start` left in ``root``, if it is still alive and ready."""
    with contextlib.suppress(FileNotFoundError, KeyError, ValueError):
        saved = json.loads((root / _RECORD_FILE).read_text())
        server = PrometheusServer(saved["url"], root, ProcessRecord.from_json(saved["process"]))
        if server.process is not None and server.process.alive() and server.ready():
            return server
    return None


def start(
    root: Path,
    *,
    host: str,
    port: int,
    scrape_configs: Sequence[dict[str, Any]],
    die_with_parent: bool,
    interval_seconds: int = INTERVAL_SECONDS,
    timeout: float = 60.0,
) -> PrometheusServer:
    """Start Prometheus on ``host:port`` with its files in ``root``, or return the one already
    running there (its config rewritten and reloaded, so the scrape jobs are the ones asked for)."""
    root = root.absolute()
    (root / "rules").mkdir(parents=True, exist_ok=True)
    (root / _CONFIG_FILE).write_text(
        yaml.safe_dump(config(scrape_configs, root / "rules", interval_seconds), sort_keys=False)
    )
    existing = running(root)
    if existing is not None:
        existing.reload()
        return existing
    if listening(host, port):
        raise PrometheusError(f"{host}:{port} is taken by a process this run did not start: stop it first")
    log = root / "prometheus.log"
    record = spawn("prometheus", argv(binary(), root, f"{host}:{port}"), log, die_with_parent=die_with_parent)
    server = PrometheusServer(f"http://{host}:{port}", root, record)
    deadline = time.monotonic() + timeout
    while not server.ready():
        if not record.alive() or time.monotonic() > deadline:
            stop([record])
            raise PrometheusError(f"Prometheus did not become ready on {server.url}; {log}:\n{tail(log)}")
        time.sleep(0.1)
    (root / _RECORD_FILE).write_text(json.dumps({"url": server.url, "process": record.to_json()}))
    return server


def stop_server(root: Path) -> list[str]:
    """Stop the Prometheus recorded in ``root`` (SIGTERM: it closes its TSDB cleanly); return what
    is left of it: its process, or anything still answering on its address. Empty when none ran."""
    try:
        saved = json.loads((root / _RECORD_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return []
    record = ProcessRecord.from_json(saved["process"])
    stop([record], grace_seconds=30)
    left = [f"prometheus process {record.pid}"] if record.alive() else []
    server = PrometheusServer(saved["url"], root, None)
    if server.ready():
        left.append(f"a Prometheus still answering on {server.url}")
    return left
