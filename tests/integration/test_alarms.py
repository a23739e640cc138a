"""Alarms read from a real Prometheus: Debian's binary, started by the same helper as the stack's
(sageport_dev.prometheus), scraping a tiny /metrics target served here.

sageport.operator.alarms must report an alerting rule that fires, by name and with its active
time, within a bounded time; report neither a rule that never fires nor one still pending; and
raise, never answer "nothing fires", when Prometheus is unreachable, silent or not Prometheus.
"""

from __future__ import annotations

import asyncio
import datetime
import http.server
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from sageport.operator.alarms import (
    FiringAlarm,
    PrometheusAnswerError,
    PrometheusUnreachableError,
    read_firing_alarms,
)
from sageport_dev import prometheus
from sageport_dev.processes import eventually, free_port

pytestmark = pytest.mark.timeout(180)

ERRORS_METRIC = "sageport_test_model_errors_total"
RULES = {
    "groups": [
        {
            "name": "sageport-alarm-test",
            "rules": [
                {"alert": "ModelErrorsHigh", "expr": f"{ERRORS_METRIC} > 5"},  # fires once errors reach 7
                {"alert": "ModelErrorsExtreme", "expr": f"{ERRORS_METRIC} > 1000"},  # never fires
                # Matches as soon as the other does, but must hold for an hour: pending, no alarm yet.
                {"alert": "ModelErrorsSustained", "expr": f"{ERRORS_METRIC} > 5", "for": "1h"},
            ],
        }
    ]
}
NAMES = {"ModelErrorsHigh", "ModelErrorsExtreme", "ModelErrorsSustained", "NoSuchRule"}
# From the errors reaching the target: the next scrape, then the next evaluation of the rules
# (each within one interval), plus time for our polling.
FIRING_BOUND_SECONDS = 2 * prometheus.INTERVAL_SECONDS + 3


class _Target(http.server.BaseHTTPRequestHandler):
    """/metrics: one counter in the text exposition format; anything else: an HTML page, like a
    web server that is not Prometheus."""

    errors = 0  # what the model's error counter says; a test raises it

    def do_GET(self) -> None:
        if self.path == "/metrics":
            body = f"# TYPE {ERRORS_METRIC} counter\n{ERRORS_METRIC} {_Target.errors}\n".encode()
            content_type = "text/plain; version=0.0.4"
        else:
            body, content_type = b"<html><body>hello</body></html>", "text/html"
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    _Target.errors = 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Target)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def server(target: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[prometheus.PrometheusServer]:
    root = tmp_path_factory.mktemp("prometheus")
    started = prometheus.start(
        root,
        host="127.0.0.1",
        port=free_port(),
        scrape_configs=[prometheus.static_scrape_config("model", [target])],
        die_with_parent=True,
    )
    try:
        yield started
    finally:
        assert prometheus.stop_server(root) == [], "Prometheus left something running"


def _rules_file(tmp_path: Path, rules: object, name: str = "alarms.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(rules))
    return path


def test_a_firing_rule_is_reported_by_name_and_pending_or_quiet_ones_are_not(
    server: prometheus.PrometheusServer, tmp_path: Path
) -> None:
    server.install_rules(_rules_file(tmp_path, RULES))

    def firing() -> tuple[FiringAlarm, ...]:
        return asyncio.run(read_firing_alarms(server.url, NAMES))

    # Quiet first: the counter scraped at 0 and the rules evaluated on it find nothing.
    eventually(lambda: server.get(f"/api/v1/query?query={ERRORS_METRIC}")["result"], what="a scrape")
    scraped_at = datetime.datetime.now(datetime.UTC)

    def evaluated_since_the_scrape() -> bool:
        [group] = server.get("/api/v1/rules")["groups"]
        return datetime.datetime.fromisoformat(group["lastEvaluation"]) > scraped_at

    eventually(evaluated_since_the_scrape, timeout=2 * prometheus.INTERVAL_SECONDS + 5, what="an evaluation")
    assert firing() == ()

    _Target.errors = 7  # the model starts failing
    raised_at = datetime.datetime.now(datetime.UTC)
    started = time.monotonic()
    alarms = eventually(firing, timeout=FIRING_BOUND_SECONDS, interval=0.2, what="ModelErrorsHigh to fire")
    seconds = time.monotonic() - started
    print(f"\nalarm firing {seconds:.1f} s after the errors (interval {prometheus.INTERVAL_SECONDS} s)")

    assert [alarm.name for alarm in alarms] == ["ModelErrorsHigh"]
    now = datetime.datetime.now(datetime.UTC)
    # A scrape stamps its samples when it starts, a hair before it reads the counter.
    assert raised_at - datetime.timedelta(seconds=1) <= alarms[0].active_at <= now

    # The other two were evaluated, so their absence is an answer, not a rule never loaded.
    raw = {alert["labels"]["alertname"]: alert["state"] for alert in server.get("/api/v1/alerts")["alerts"]}
    assert raw == {"ModelErrorsHigh": "firing", "ModelErrorsSustained": "pending"}
    [group] = server.get("/api/v1/rules")["groups"]
    assert {rule["name"]: rule["health"] for rule in group["rules"]} == {
        "ModelErrorsHigh": "ok",
        "ModelErrorsExtreme": "ok",
        "ModelErrorsSustained": "ok",
    }
    assert firing() == alarms, "reading again reports the same alarm, since the same time"

    server.remove_rules("alarms.yaml")
    assert server.get("/api/v1/rules")["groups"] == []
    assert firing() == ()


def test_an_invalid_rule_file_is_refused_with_promtools_words(
    server: prometheus.PrometheusServer, tmp_path: Path
) -> None:
    broken = {"groups": [{"name": "broken", "rules": [{"alert": "Broken", "expr": "sum(("}]}]}
    with pytest.raises(prometheus.PrometheusError, match="is no valid rule file") as refused:
        server.install_rules(_rules_file(tmp_path, broken, "broken.yaml"))
    assert "parse error" in str(refused.value)
    assert not (server.rules_dir / "broken.yaml").exists()


async def test_an_unreachable_prometheus_is_an_error_naming_it() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(
        PrometheusUnreachableError, match=re.escape(f"Prometheus at {url}/api/v1/alerts is unreachable")
    ):
        await read_firing_alarms(url, {"ModelErrorsHigh"})


async def test_a_silent_prometheus_is_an_error_after_the_timeout() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections, never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(PrometheusUnreachableError, match=re.escape("did not answer within 0.5 s")):
            await read_firing_alarms(url, {"ModelErrorsHigh"}, timeout_seconds=0.5)
        assert time.monotonic() - started < 5


async def test_a_server_that_is_not_prometheus_is_an_error_quoting_its_answer(target: str) -> None:
    with pytest.raises(
        PrometheusAnswerError, match=re.escape("answered HTTP 200 with no JSON: '<html><body>hello")
    ):
        await read_firing_alarms(f"http://{target}/not-prometheus", {"ModelErrorsHigh"})


def test_the_stack_cli_loads_rules_into_the_stacks_prometheus(tmp_path: Path, target: str) -> None:
    """`python -m sageport_dev alarm-rules FILE` (and `--remove NAME`) on a stack directory whose
    Prometheus runs; a second start finds and keeps the running one; stopping leaves nothing."""
    stack_dir = tmp_path / "stack"
    root = stack_dir / "prometheus"  # where `make up PROMETHEUS=1` keeps it
    port = free_port()
    scrape = [prometheus.static_scrape_config("model", [target])]
    first = prometheus.start(root, host="127.0.0.1", port=port, scrape_configs=scrape, die_with_parent=True)
    try:
        again = prometheus.start(
            root, host="127.0.0.1", port=port, scrape_configs=scrape, die_with_parent=True
        )
        assert again.process == first.process

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            env = {**os.environ, "SAGEPORT_STACK_DIR": str(stack_dir)}
            argv = [sys.executable, "-m", "sageport_dev", "alarm-rules", *args]
            return subprocess.run(argv, capture_output=True, text=True, env=env, check=False, timeout=60)

        loaded = cli(str(_rules_file(tmp_path, RULES)))
        assert (loaded.returncode, loaded.stdout) == (0, "rule files loaded: alarms.yaml\n"), loaded.stderr
        [group] = first.get("/api/v1/rules")["groups"]
        assert group["name"] == "sageport-alarm-test"

        refused = cli(
            str(_rules_file(tmp_path, {"groups": [{"name": "x", "rules": [{"alert": "A"}]}]}, "bad.yml"))
        )
        assert refused.returncode == 1
        assert "bad.yml is no valid rule file" in refused.stderr

        removed = cli("--remove", "alarms.yaml")
        assert (removed.returncode, removed.stdout) == (0, "rule files loaded: none\n"), removed.stderr
        assert first.get("/api/v1/rules")["groups"] == []
    finally:
        assert prometheus.stop_server(root) == []
    assert prometheus.running(root) is None
