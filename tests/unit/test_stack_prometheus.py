"""The local stack's optional Prometheus, without starting it: its configuration, and what `up`
exports with and without it (the integration test tests/integration/test_alarms.py runs it)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from sageport import contract
from sageport_dev import prometheus
from sageport_dev.local_stack import StackEnv

ENV = StackEnv(
    kubeconfig="/tmp/s/kubeconfig",
    runtime_url="http://10.96.0.10:80",
    s3_url="http://10.85.0.1:9000",
    access_key_id="AKIA",
    secret_access_key="secret",
    region="us-east-1",
    namespace="sagemaker",
    bucket="sageport-models",
    images=("sageport/operator:abc", "sageport/runtime:def"),
)


def test_config_scrapes_and_evaluates_every_interval_with_rules_from_its_directory(tmp_path: Path) -> None:
    job = prometheus.static_scrape_config("sageport-gateway", ["10.96.0.20:9090"])
    config = prometheus.config([job], tmp_path / "rules")
    assert config["global"] == {"scrape_interval": "5s", "scrape_timeout": "5s", "evaluation_interval": "5s"}
    assert config["rule_files"] == [f"{tmp_path}/rules/*.yaml", f"{tmp_path}/rules/*.yml"]
    assert config["scrape_configs"] == [
        {"job_name": "sageport-gateway", "static_configs": [{"targets": ["10.96.0.20:9090"]}]}
    ]
    assert "alerting" not in config  # no Alertmanager: the operator reads the alerts itself


def test_the_server_reloads_on_request_and_keeps_its_data_in_its_directory(tmp_path: Path) -> None:
    argv = prometheus.argv(Path("/usr/bin/prometheus"), tmp_path, "10.85.0.1:19090")
    assert "--web.enable-lifecycle" in argv
    assert f"--storage.tsdb.path={tmp_path}/data" in argv
    assert f"--config.file={tmp_path}/prometheus.yml" in argv
    assert "--web.listen-address=10.85.0.1:19090" in argv


def test_up_exports_the_alarm_source_only_when_the_stack_runs_prometheus(tmp_path: Path) -> None:
    assert contract.PROMETHEUS_URL_ENV not in ENV.exports()
    with_prometheus = dataclasses.replace(ENV, prometheus_url="http://10.85.0.1:19090")
    exports = with_prometheus.exports().splitlines()
    assert f"export {contract.PROMETHEUS_URL_ENV}=http://10.85.0.1:19090" in exports
    assert exports[:-1] == ENV.exports().splitlines()

    saved = tmp_path / "stack-env.json"
    with_prometheus.save(saved)
    assert StackEnv.load(saved) == with_prometheus
    # A stack started before Prometheus existed in it: its saved file has no such key.
    old = {k: v for k, v in json.loads(saved.read_text()).items() if k != "prometheus_url"}
    saved.write_text(json.dumps(old))
    assert StackEnv.load(saved) == ENV
