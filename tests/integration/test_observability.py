"""The observability pack against the real components: every metric the Grafana dashboard and the
PrometheusRule example query is one the gateway, the router or the model server exports on its
live ``/metrics`` after real calls, so no panel is empty and no alarm silent by a typo."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.integration.gateway.support import (
    Process,
    runtime_client,
    start_backend,
    start_gateway,
    start_router,
)
from tests.integration.server.conftest import Servers
from tests.support.helm import render
from tests.support.manifests import EXAMPLES, REPO

DASHBOARD = REPO / "charts" / "sageport" / "files" / "grafana" / "sageport-endpoints.json"
RULES = EXAMPLES / "monitoring" / "prometheusrule.yml"
# A metric name in PromQL: ours all start with sageport_.
_METRIC = re.compile(r"\bsageport_[a-z0-9_]+")
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", re.MULTILINE)


def _exported(url: str) -> set[str]:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return {match.group(1) for match in _SAMPLE.finditer(text) if not match.group(1).startswith("#")}


def _dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            queries.append(variable["query"]["query"])
    return queries


def _rule_queries() -> list[str]:
    document = yaml.safe_load(RULES.read_text())
    return [rule["expr"] for group in document["spec"]["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[set[str]]:
    """Sample names on the live /metrics of a gateway, a Direct router and a multi-model server,
    each after real calls (a labelled family has no samples before its first use)."""
    directory = tmp_path_factory.mktemp("observability")
    started: list[Process] = []
    servers = Servers(directory)
    try:
        first, second = start_backend("first"), start_backend("second")
        started += [first, second]
        router = start_router(
            {"first": first.url, "second": second.url}, "--endpoint", "direct", "--variant", "AllTraffic"
        )
        started.append(router)
        routes = directory / "routes.yaml"
        routes.write_text(
            yaml.safe_dump(
                {
                    "endpoints": {
                        "plain": {"variants": [{"name": "AllTraffic", "backends": [first.url]}]},
                        "direct": {
                            "variants": [
                                {
                                    "name": "AllTraffic",
                                    "backends": [router.url],
                                    "containerHostnames": ["first", "second"],
                                }
                            ]
                        },
                    }
                }
            )
        )
        gateway = start_gateway(["--routes", str(routes), "--no-auth"])
        started.append(gateway)
        client = runtime_client(gateway.url)
        client.invoke_endpoint(EndpointName="plain", Body=b"x")
        with pytest.raises(client.exceptions.ModelError):
            client.invoke_endpoint(EndpointName="plain", Body=b"x", CustomAttributes="mode=status:500")
        with pytest.raises(client.exceptions.ModelError):
            client.invoke_endpoint(EndpointName="plain", Body=b"x", CustomAttributes="mode=status:400")
        with pytest.raises(client.exceptions.ValidationError):
            client.invoke_endpoint(EndpointName="nope", Body=b"x")
        client.invoke_endpoint(EndpointName="direct", Body=b"x", TargetContainerHostname="first")
        for mode in ("status:500", "status:400"):
            with pytest.raises(client.exceptions.ModelError):
                client.invoke_endpoint(
                    EndpointName="direct",
                    Body=b"x",
                    TargetContainerHostname="second",
                    CustomAttributes=f"mode={mode}",
                )

        server = _multi_model_server(servers, directory)
        headers = {"Content-Type": "application/json", "X-Amzn-SageMaker-Target-Model": "m.tar.gz"}
        row = json.dumps([[0.0] * 4]).encode()
        for _ in range(2):  # a miss (load on first call), then a hit
            assert server.request("POST", "/models/m/invoke", row, headers).status == 200

        yield _exported(gateway.url) | _exported(router.url) | _exported(server.base)
    finally:
        servers.stop_all()
        for process in started:
            process.stop()


def _multi_model_server(servers: Servers, directory: Path) -> Any:
    import joblib
    from sklearn.neighbors import KNeighborsClassifier

    model = directory / "models" / "m" / "model"
    model.mkdir(parents=True)
    features = np.random.default_rng(0).normal(size=(30, 4))
    joblib.dump(KNeighborsClassifier(n_neighbors=1).fit(features, np.arange(30) % 3), model / "model.joblib")
    server = servers(
        "serve",
        env={
            "SAGEMAKER_MULTI_MODEL": "true",
            "SAGEPORT_MULTI_MODEL_ROOT": str(directory / "models"),
            "SAGEPORT_KSERVE_ROUTES": "false",
        },
    )
    body = json.dumps({"model_name": "m", "url": str(model)}).encode()
    assert server.request("POST", "/models", body, {"Content-Type": "application/json"}).status == 200
    return server


def test_the_dashboard_is_valid_grafana_json_with_the_sagemaker_panels() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "sageport-endpoints"
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["targets"], panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert {"h", "w", "x", "y"} <= panel["gridPos"].keys()
    titles = " ".join(panel["title"] for panel in panels)
    for sagemaker_name in ("Invocations", "Invocation4XXErrors", "Invocation5XXErrors", "ModelLatency",
                           "OverheadLatency", "Instances"):  # fmt: skip
        assert sagemaker_name in titles
    # Per endpoint and variant: the variables exist and every gateway query filters by them.
    names = [variable["name"] for variable in dashboard["templating"]["list"]]
    assert names == ["datasource", "endpoint", "variant"]
    for panel in panels:
        for target in panel["targets"]:
            if "sageport_invocation" in target["expr"] or "latency" in target["expr"]:
                assert 'endpoint=~"$endpoint"' in target["expr"], target["expr"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool comes with Debian's prometheus")
def test_every_dashboard_and_alarm_expression_parses_in_promtool(tmp_path: Path) -> None:
    queries = [query.replace("$__rate_interval", "1m").replace("$endpoint", ".*").replace("$variant", ".*")
               for query in _dashboard_queries(json.loads(DASHBOARD.read_text())) if "label_values" not in query]  # fmt: skip
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"sageport:check:{index}", "expr": query} for index, query in enumerate(queries)]}]}  # fmt: skip
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump(rules))
    (tmp_path / "alarms.yml").write_text(
        yaml.safe_dump({"groups": yaml.safe_load(RULES.read_text())["spec"]["groups"]})
    )
    result = subprocess.run(
        ["promtool", "check", "rules", str(tmp_path / "dashboard.yml"), str(tmp_path / "alarms.yml")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_queried_metric_is_exported_by_a_live_component(exported: set[str]) -> None:
    # Sanity: the scrape saw the three components.
    assert {
        "sageport_invocations_total",
        "sageport_container_invocations_total",
        "sageport_loaded_models",
    } <= exported
    queried = {
        name
        for query in _dashboard_queries(json.loads(DASHBOARD.read_text()))
        for name in _METRIC.findall(query)
    }
    queried |= {name for query in _rule_queries() for name in _METRIC.findall(query)}
    assert len(queried) >= 15
    missing = sorted(queried - exported)
    assert not missing, f"queried but exported by no component: {missing}"


def test_the_rollback_alarm_is_among_the_example_rules() -> None:
    endpoint = next(
        doc for doc in yaml.safe_load_all((EXAMPLES / "alarm-rollback" / "all.yaml").read_text())
        if doc and doc["kind"] == "Endpoint"
    )  # fmt: skip
    alarms = endpoint["spec"]["deploymentConfig"]["autoRollbackConfiguration"]["alarms"]
    alerts = {
        rule["alert"]
        for group in yaml.safe_load(RULES.read_text())["spec"]["groups"]
        for rule in group["rules"]
    }
    assert {alarm["alarmName"] for alarm in alarms} <= alerts
    local = yaml.safe_load((EXAMPLES / "alarm-rollback" / "alarm-rules.yml").read_text())
    assert local["groups"][0] in yaml.safe_load(RULES.read_text())["spec"]["groups"]


def test_the_chart_ships_the_dashboard_for_the_grafana_sidecar_when_asked() -> None:
    assert not [m for m in render().kind("ConfigMap") if "grafana" in m["metadata"]["name"]]
    rendered = render(
        "--set",
        "grafanaDashboard.enabled=true",
        "--set-json",
        'grafanaDashboard.annotations={"grafana_folder":"sageport"}',
    )
    (config_map,) = [m for m in rendered.kind("ConfigMap") if "grafana" in m["metadata"]["name"]]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "sageport"}
    assert json.loads(config_map["data"]["sageport-endpoints.json"]) == json.loads(DASHBOARD.read_text())
