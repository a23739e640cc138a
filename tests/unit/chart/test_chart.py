"""The Helm chart, rendered by the real helm binary: what a user installing it gets."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sageport import contract
from sageport.api.v1alpha1 import InstanceType, InstanceTypeSpec
from sageport.gateway.main import build_parser as gateway_parser
from sageport.operator import crdgen, kube
from sageport.operator.catalog import catalog_manifests, parse_catalog
from sageport.operator.settings import OperatorSettings
from tests.support.helm import CHART, NAMESPACE, Rendered, helm, render
from tests.support.manifests import REPO

OPERATOR = "sageport-operator"
GATEWAY = "sageport-gateway"
LOCAL = '[{"name":"local","cpu":"1","memory":"2Gi","nodeSelector":{"kubernetes.io/hostname":"node-1"},"tolerations":[{"key":"sageport.io/real","operator":"Exists","effect":"NoSchedule"}]}]'


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> dict[str, list[str]]:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


OWN = ["get", "list", "watch", "create", "patch", "delete"]
OPERATOR_NAMESPACED_RULES = [
    _rule(
        ["sageport.io"], ["models", "endpointconfigs", "endpoints", "transformjobs"], ["get", "list", "watch"]
    ),
    _rule(
        ["sageport.io"],
        ["models/status", "endpointconfigs/status", "endpoints/status", "transformjobs/status"],
        ["patch"],
    ),
    # A TransformJob's Job: created once, then only suspended; garbage collection deletes it.
    _rule(["batch"], ["jobs"], ["get", "list", "watch", "create", "patch"]),
    _rule(["apps"], ["deployments"], OWN),
    _rule([""], ["services"], OWN),
    _rule(["policy"], ["poddisruptionbudgets"], OWN),
    _rule(["autoscaling"], ["horizontalpodautoscalers"], OWN),
    _rule(["keda.sh"], ["scaledobjects", "triggerauthentications"], OWN),  # serverless, async from zero
    _rule([""], ["pods"], ["list", "create", "patch", "delete"]),
    _rule([""], ["events"], ["create"]),
]
OPERATOR_CLUSTER_RULES = [
    _rule(["sageport.io"], ["instancetypes"], OWN),
    _rule(["apiextensions.k8s.io"], ["customresourcedefinitions"], ["list", "watch"]),
    # Pod Security labels: may a Model run as root there (and, namespaced, the namespaces kopf serves).
    _rule([""], ["namespaces"], ["get", "list", "watch"]),
]
GATEWAY_NAMESPACED_RULES = [
    # The control-plane API (on by default) caches the kinds and writes them only as the
    # ServiceAccount each key names (impersonation): the gateway itself writes nothing.
    _rule(
        ["sageport.io"], ["models", "endpointconfigs", "endpoints", "transformjobs"], ["get", "list", "watch"]
    ),
    _rule([""], ["serviceaccounts"], ["impersonate"]),
    _rule(["discovery.k8s.io"], ["endpointslices"], ["list", "watch"]),
    _rule([""], ["secrets"], ["list", "watch"]),
]
GATEWAY_CLUSTER_RULES = [
    _rule(["authentication.k8s.io"], ["tokenreviews"], ["create"]),
    _rule(["authorization.k8s.io"], ["subjectaccessreviews"], ["create"]),
]


def _containers(pod_spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from pod_spec.get("initContainers") or []
    yield from pod_spec["containers"]


def _container(rendered: Rendered, deployment: str) -> dict[str, Any]:
    (container,) = rendered.get("Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    return container


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env") or [] if "value" in e}


# ---- the chart as a whole ------------------------------------------------------------------


def test_lint_is_clean() -> None:
    result = helm("lint", "--strict", str(CHART), "--set-json", f"instanceTypes.extra={LOCAL}")
    assert "0 chart(s) failed" in result.stdout


def test_chart_version_matches_the_project() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert (chart["apiVersion"], chart["name"], chart["version"]) == ("v2", "sageport", "0.1.0")
    assert chart["appVersion"] == project["version"]


def test_default_install_creates_what_the_readme_lists() -> None:
    kinds = sorted(d["kind"] for d in render().docs)
    assert kinds == sorted(
        ["CustomResourceDefinition"] * len(crdgen.KINDS)
        + ["ConfigMap", "ServiceAccount", "ServiceAccount", "ClusterRole", "ClusterRole"]
        + ["ClusterRoleBinding", "ClusterRoleBinding", "Deployment", "Deployment"]
        + ["Service", "PodDisruptionBudget", "Role", "RoleBinding"]  # the operator's Lease
    )
    for doc in render().docs:
        if doc["kind"] not in ("CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"):
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["metadata"]["name"]
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "sageport"


# ---- CRDs ----------------------------------------------------------------------------------


def test_crds_are_the_generated_ones_and_kept_on_uninstall() -> None:
    crds = {c["metadata"]["name"]: c for c in render().kind("CustomResourceDefinition")}
    for kind in crdgen.KINDS:
        expected = crdgen.crd(kind)
        rendered = crds[expected["metadata"]["name"]]
        assert rendered["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
        assert rendered["spec"] == expected["spec"]  # helm's YAML round trip changed nothing


def test_crds_without_keep_or_not_at_all() -> None:
    for crd in render("--set", "crds.keep=false").kind("CustomResourceDefinition"):
        assert "helm.sh/resource-policy" not in (crd["metadata"].get("annotations") or {})
    assert render("--set", "crds.install=false").kind("CustomResourceDefinition") == []


# ---- RBAC ----------------------------------------------------------------------------------


def test_the_gateway_writes_no_sageport_object_as_itself() -> None:
    for args in ((), ("--set-json", 'watchNamespaces=["team-a"]')):
        rendered = render(*args)
        for doc in [*rendered.kind("ClusterRole"), *rendered.kind("Role")]:
            if doc["metadata"]["name"] != GATEWAY:
                continue
            for rule in doc["rules"]:
                if "sageport.io" in rule["apiGroups"]:
                    assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule


def test_rbac_is_exactly_least_privilege() -> None:
    rendered = render()
    operator = rendered.get("ClusterRole", OPERATOR)["rules"]
    gateway = rendered.get("ClusterRole", GATEWAY)["rules"]
    assert operator == OPERATOR_NAMESPACED_RULES + OPERATOR_CLUSTER_RULES
    assert gateway == GATEWAY_NAMESPACED_RULES + GATEWAY_CLUSTER_RULES
    for name in (OPERATOR, GATEWAY):
        binding = rendered.get("ClusterRoleBinding", name)
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": name,
        }
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}]


# Children the operator never deletes itself: garbage collection removes them with their owner.
NEVER_DELETED = {"jobs"}


def test_rbac_covers_every_kind_the_operator_writes() -> None:
    rules = OPERATOR_NAMESPACED_RULES + OPERATOR_CLUSTER_RULES
    for (api_version, _kind), plural in kube._PLURALS.items():
        group = api_version.rpartition("/")[0]
        granted = {
            v for r in rules if group in r["apiGroups"] and plural in r["resources"] for v in r["verbs"]
        }
        wanted = {"create", "patch", "list", "watch"} | (set() if plural in NEVER_DELETED else {"delete"})
        assert wanted <= granted, plural
        assert plural not in NEVER_DELETED or "delete" not in granted, plural


def test_no_wildcards_anywhere() -> None:
    for args in ((), ("--set-json", 'watchNamespaces=["team-a"]')):
        for doc in render(*args).docs:
            if doc["kind"] in ("ClusterRole", "Role"):
                for rule in doc["rules"]:
                    assert "*" not in [*rule["apiGroups"], *rule["resources"], *rule["verbs"]], doc
                    if "resourceNames" in rule:  # only the operator's own Lease is named
                        assert rule["resources"] == ["leases"], doc
                    assert "nonResourceURLs" not in rule


def test_watched_namespaces_get_roles_and_only_cluster_scoped_rules_stay_cluster_wide() -> None:
    rendered = render("--set-json", 'watchNamespaces=["team-b","team-a"]')
    assert rendered.get("ClusterRole", OPERATOR)["rules"] == OPERATOR_CLUSTER_RULES
    assert rendered.get("ClusterRole", GATEWAY)["rules"] == GATEWAY_CLUSTER_RULES
    for namespace in ("team-a", "team-b"):
        assert rendered.get("Role", OPERATOR, namespace)["rules"] == OPERATOR_NAMESPACED_RULES
        assert rendered.get("Role", GATEWAY, namespace)["rules"] == GATEWAY_NAMESPACED_RULES
        assert rendered.get("RoleBinding", OPERATOR, namespace)["subjects"][0]["namespace"] == NAMESPACE
    # The gateway's own namespace: only the access-key Secrets that may grant other namespaces.
    assert rendered.get("Role", GATEWAY, NAMESPACE)["rules"] == [_rule([""], ["secrets"], ["list", "watch"])]
    roles = {(r["metadata"]["name"], r["metadata"]["namespace"]) for r in rendered.kind("Role")}
    assert roles == {
        (OPERATOR, "team-a"),
        (OPERATOR, "team-b"),
        (GATEWAY, "team-a"),
        (GATEWAY, "team-b"),
        (GATEWAY, NAMESPACE),
        (f"{OPERATOR}-leader-election", NAMESPACE),
    }
    args = _container(rendered, OPERATOR)["args"]
    assert args[:2] == ["--namespace=team-a", "--namespace=team-b"]
    assert gateway_parser().parse_args(_container(rendered, GATEWAY)["args"]).namespace == [
        "team-a",
        "team-b",
    ]


def test_the_operator_may_touch_only_its_own_lease_in_the_release_namespace() -> None:
    rendered = render()
    role = rendered.get("Role", f"{OPERATOR}-leader-election", NAMESPACE)
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": [OPERATOR],
         "verbs": ["get", "update"]},
        _rule(["coordination.k8s.io"], ["leases"], ["create"]),
    ]  # fmt: skip
    binding = rendered.get("RoleBinding", f"{OPERATOR}-leader-election", NAMESPACE)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": OPERATOR, "namespace": NAMESPACE}]
    alone = render("--set", "operator.leaderElection.enabled=false")
    assert not alone.has("Role", f"{OPERATOR}-leader-election")
    deployment = alone.get("Deployment", OPERATOR)
    assert (deployment["spec"]["replicas"], deployment["spec"]["strategy"]) == (1, {"type": "Recreate"})
    assert "--leader-election" not in _container(alone, OPERATOR)["args"]


def test_gateway_without_auth_loses_the_review_permissions() -> None:
    rendered = render("--set", "gateway.auth.enabled=false")
    assert rendered.get("ClusterRole", GATEWAY)["rules"] == GATEWAY_NAMESPACED_RULES
    assert gateway_parser().parse_args(_container(rendered, GATEWAY)["args"]).no_auth
    assert not gateway_parser().parse_args(_container(render(), GATEWAY)["args"]).no_auth


def test_control_api_off_leaves_the_gateway_read_only() -> None:
    on = render()
    args = gateway_parser().parse_args(_container(on, GATEWAY)["args"])
    assert args.control_api
    assert args.account_id == "000000000000"
    rendered = render("--set", "gateway.controlApi.enabled=false")
    assert not gateway_parser().parse_args(_container(rendered, GATEWAY)["args"]).control_api
    assert rendered.get("ClusterRole", GATEWAY)["rules"] == [
        _rule(["sageport.io"], ["endpoints"], ["get", "list", "watch"]),
        *GATEWAY_NAMESPACED_RULES[2:],
        *GATEWAY_CLUSTER_RULES,
    ]
    account = render("--set-string", "gateway.controlApi.accountId=123456789012")
    assert gateway_parser().parse_args(_container(account, GATEWAY)["args"]).account_id == "123456789012"


def test_rbac_create_false_creates_none() -> None:
    kinds = {d["kind"] for d in render("--set", "rbac.create=false").docs}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


# ---- pod security --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [(), ("--set-json", 'watchNamespaces=["a"]', "--set", "gateway.metrics.serviceMonitor.enabled=true")],
    ids=["defaults", "overrides"],
)
def test_every_pod_meets_the_restricted_pod_security_standard(args: tuple[str, ...]) -> None:
    deployments = render(*args).kind("Deployment")
    assert len(deployments) == 2
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        name = deployment["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == 65532, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is True, name  # both call the API server
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            assert not pod.get(key), name
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert all("hostPath" not in v for v in volumes.values()), name
        for container in _containers(pod):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["runAsNonRoot"] is True, name
            assert context["runAsUser"] != 0, name
            assert not context.get("privileged"), name
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/tmp"]], name
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), name
            assert "memory" in resources["limits"], name
            assert all("hostPort" not in p for p in container.get("ports") or []), name


def test_service_accounts_do_not_mount_tokens_by_default() -> None:
    accounts = render().kind("ServiceAccount")
    assert {a["metadata"]["name"] for a in accounts} == {OPERATOR, GATEWAY}
    assert all(a["automountServiceAccountToken"] is False for a in accounts)


def test_default_resources() -> None:
    operator = _container(render(), OPERATOR)["resources"]
    gateway = _container(render(), GATEWAY)["resources"]
    assert operator["requests"] == {"cpu": "100m", "memory": "256Mi"}
    assert gateway["requests"] == {"cpu": "100m", "memory": "128Mi"}


# ---- operator ------------------------------------------------------------------------------


def test_operator_deployment_and_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    rendered = render(
        "--set",
        "runtime.image.repository=registry.local/runtime,runtime.image.tag=dev,runtime.image.pullPolicy=Never",
        "--set",
        "operator.image.repository=registry.local/operator,operator.image.tag=dev",
        "--set",
        "operator.storage.endpointURL=http://s3.local:7070,operator.storage.secretName=s3-creds",
        "--set-json",
        'operator.tolerateTaints=["sageport.io/real","example.com/gpu"]',
        "--set-json",
        'operator.nodeSelector={"kubernetes.io/hostname":"node-1"}',
        "--set-json",
        'operator.tolerations=[{"key":"sageport.io/real","operator":"Exists","effect":"NoSchedule"}]',
    )
    deployment = rendered.get("Deployment", OPERATOR)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == OPERATOR
    assert pod["nodeSelector"] == {"kubernetes.io/hostname": "node-1"}
    assert pod["tolerations"][0]["key"] == "sageport.io/real"
    container = _container(rendered, OPERATOR)
    assert container["image"] == "registry.local/operator:dev"
    assert container["command"] == ["sageport-operator"]
    assert container["args"] == [
        "--liveness=http://0.0.0.0:8081/healthz",
        "--leader-election",
        f"--lease-namespace={NAMESPACE}",
        f"--lease-name={OPERATOR}",
    ]
    pod_name = next(e for e in container["env"] if e["name"] == "POD_NAME")
    assert pod_name["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {"name": "health", "containerPort": 8081} in container["ports"]

    # The environment, read back by the operator's own settings loader.
    for name, value in _env(container).items():
        monkeypatch.setenv(name, value)
    settings = OperatorSettings.from_env()
    assert settings.runtime_image == "registry.local/runtime:dev"
    assert settings.image_pull_policy == "Never"
    assert settings.storage_endpoint_url == "http://s3.local:7070"
    assert settings.storage_secret == "s3-creds"
    assert settings.tolerate_taints == ("sageport.io/real", "example.com/gpu")
    mount = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}["instance-types"]
    assert settings.catalog_path == mount


def test_operator_defaults_use_the_app_version_and_leave_storage_unset() -> None:
    container = _container(render(), OPERATOR)
    env = _env(container)
    assert container["image"] == "sageport/operator:0.1.0"
    assert env["SAGEPORT_RUNTIME_IMAGE"] == "sageport/runtime:0.1.0"
    assert not {"SAGEPORT_STORAGE_ENDPOINT_URL", "SAGEPORT_STORAGE_SECRET", "SAGEPORT_TOLERATE_TAINTS"} & set(
        env
    )


def test_the_alarm_source_reaches_the_operator_settings_and_is_unset_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = "http://prometheus.monitoring:9090/prom"
    env = _env(_container(render("--set", f"operator.alarms.prometheusUrl={url}"), OPERATOR))
    assert env[contract.PROMETHEUS_URL_ENV] == url
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert OperatorSettings.from_env().prometheus_url == url

    default = _env(_container(render(), OPERATOR))
    assert contract.PROMETHEUS_URL_ENV not in default
    monkeypatch.delenv(contract.PROMETHEUS_URL_ENV)
    assert OperatorSettings.from_env().prometheus_url is None


def test_the_image_map_reaches_the_operator_extra_rules_first(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = {"match": ".*/pytorch-inference:.+-cpu-.+", "image": "registry.local/torch:1"}
    env = _env(_container(render("--set-json", f"operator.imageMap.extra=[{json.dumps(torch)}]"), OPERATOR))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    rules = OperatorSettings.from_env().image_rules
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())["operator"]["imageMap"]["defaults"]
    assert [(r.match, r.image) for r in rules] == [(torch["match"], torch["image"])] + [
        (d["match"], None) for d in defaults
    ]
    monkeypatch.setenv("SAGEPORT_IMAGE_MAP", _env(_container(render(), OPERATOR))["SAGEPORT_IMAGE_MAP"])
    assert len(OperatorSettings.from_env().image_rules) == len(defaults)
    monkeypatch.setenv(
        "SAGEPORT_IMAGE_MAP",
        _env(_container(render("--set-json", "operator.imageMap.defaults=[]"), OPERATOR))[
            "SAGEPORT_IMAGE_MAP"
        ],
    )
    assert OperatorSettings.from_env().image_rules == ()


def test_a_catalog_change_restarts_the_operator() -> None:
    def checksum(*args: str) -> str:
        template = render(*args).get("Deployment", OPERATOR)["spec"]["template"]
        return str(template["metadata"]["annotations"]["checksum/instance-types"])

    assert checksum() != checksum("--set-json", f"instanceTypes.extra={LOCAL}")


def test_operator_disabled_takes_its_catalog_and_rbac_along() -> None:
    rendered = render("--set", "operator.enabled=false")
    assert not rendered.has("Deployment", OPERATOR)
    assert not rendered.has("ClusterRole", OPERATOR)
    assert rendered.kind("ConfigMap") == []


# ---- instance types ------------------------------------------------------------------------


def _catalog(rendered: Rendered) -> dict[str, dict[str, Any]]:
    (config_map,) = rendered.kind("ConfigMap")
    return parse_catalog(sorted(config_map["data"].items()))


def test_extra_instance_types_render_valid_instance_type_objects() -> None:
    rendered = render("--set-json", f"instanceTypes.extra={LOCAL}")
    (config_map,) = rendered.kind("ConfigMap")
    extra = [d for d in yaml.safe_load_all(config_map["data"]["02-extra.yaml"]) if d]
    assert [d["metadata"]["name"] for d in extra] == ["local"]
    local = InstanceType.model_validate(extra[0])
    assert (local.spec.cpu, local.spec.memory, local.spec.gpu_count) == ("1", "2Gi", 0)
    assert local.spec.node_selector == {"kubernetes.io/hostname": "node-1"}
    assert local.spec.tolerations is not None
    assert local.spec.tolerations[0].key == "sageport.io/real"
    catalog = _catalog(rendered)
    assert len(catalog) == len(catalog_manifests()) + 1
    assert "ml.g5.xlarge" in catalog


def test_extra_overrides_a_default_entry_and_install_false_drops_the_defaults() -> None:
    override = '[{"name":"ml.g5.xlarge","cpu":"3","memory":"12Gi","gpuCount":1,"gpuProduct":"NVIDIA-A10G"}]'
    catalog = _catalog(render("--set-json", f"instanceTypes.extra={override}"))
    assert catalog["ml.g5.xlarge"]["spec"]["cpu"] == "3"
    only_extra = _catalog(
        render("--set", "instanceTypes.install=false", "--set-json", f"instanceTypes.extra={LOCAL}")
    )
    assert list(only_extra) == ["local"]


def test_the_values_schema_knows_every_instance_type_field() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    item = schema["definitions"]["instanceType"]
    wire = {field.alias or name for name, field in InstanceTypeSpec.model_fields.items()}
    assert set(item["properties"]) == wire | {"name"}
    assert item["additionalProperties"] is False


# ---- gateway -------------------------------------------------------------------------------


def test_gateway_runs_in_kubernetes_mode_from_the_runtime_image() -> None:
    rendered = render("--set", "runtime.image.repository=registry.local/runtime,runtime.image.tag=dev")
    deployment = rendered.get("Deployment", GATEWAY)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    pod = deployment["spec"]["template"]["spec"]
    container = _container(rendered, GATEWAY)
    assert container["image"] == "registry.local/runtime:dev"
    assert container["command"] == ["sageport-gateway"]
    args = gateway_parser().parse_args(container["args"])
    assert args.kubernetes
    assert not args.no_auth
    assert args.namespace == []
    assert args.system_namespace == NAMESPACE
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": args.port, "metrics": args.metrics_port, "scaler": args.scaler_port}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ping", "port": "http"}
    assert container["livenessProbe"]["tcpSocket"] == {"port": "http"}
    # SIGTERM: /ping fails, serving goes on for the shutdown delay, then in-flight requests drain.
    assert args.shutdown_delay > 0
    assert pod["terminationGracePeriodSeconds"] > args.shutdown_delay + args.drain_timeout
    service = rendered.get("Service", GATEWAY)
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
        {"name": "scaler", "port": args.scaler_port, "targetPort": "scaler", "protocol": "TCP"},  # KEDA
    ]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(args.metrics_port)


def test_serverless_placement_and_the_scaler_address_reach_the_operator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {e["name"]: e.get("value") for e in _container(render(), OPERATOR)["env"]}
    assert env["SAGEPORT_SCALER_ADDRESS"] == f"{GATEWAY}.{NAMESPACE}.svc:9091"
    assert "SAGEPORT_SERVERLESS_NODE_SELECTOR" not in env
    rendered = render(
        "--set-json",
        'serverless={"nodeSelector":{"pool":"serverless"},"tolerations":[{"key":"t","operator":"Exists"}],'
        '"scalerAddress":"10.0.0.7:9091"}',
    )
    env = {e["name"]: e.get("value") for e in _container(rendered, OPERATOR)["env"]}
    assert json.loads(env["SAGEPORT_SERVERLESS_NODE_SELECTOR"]) == {"pool": "serverless"}
    assert json.loads(env["SAGEPORT_SERVERLESS_TOLERATIONS"]) == [{"key": "t", "operator": "Exists"}]
    assert env["SAGEPORT_SCALER_ADDRESS"] == "10.0.0.7:9091"
    for name, value in env.items():  # read back by the operator's own settings loader
        monkeypatch.setenv(name, value or "")
    settings = OperatorSettings.from_env().render_settings()
    assert settings.serverless_node_selector == (("pool", "serverless"),)
    assert [t.to_k8s() for t in settings.serverless_tolerations] == [{"key": "t", "operator": "Exists"}]
    assert settings.scaler_address == "10.0.0.7:9091"


def test_gateway_service_type_placement_and_grace_follow_the_values() -> None:
    rendered = render(
        "--set",
        "gateway.service.type=NodePort,gateway.service.nodePort=30080,gateway.replicas=1",
        "--set",
        "gateway.shutdownDelaySeconds=2,gateway.drainTimeoutSeconds=10",
        "--set-json",
        'gateway.nodeSelector={"kubernetes.io/hostname":"node-1"}',
        "--set-json",
        'gateway.tolerations=[{"key":"sageport.io/real","operator":"Exists"}]',
    )
    service = rendered.get("Service", GATEWAY)
    assert service["spec"]["type"] == "NodePort"
    assert service["spec"]["ports"][0]["nodePort"] == 30080
    pod = rendered.get("Deployment", GATEWAY)["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 17
    assert pod["nodeSelector"] == {"kubernetes.io/hostname": "node-1"}
    assert pod["tolerations"] == [{"key": "sageport.io/real", "operator": "Exists"}]


def test_gateway_data_capture_gets_its_s3_endpoint_and_credentials_from_the_values() -> None:
    default = _container(render(), GATEWAY)
    assert "AWS_ENDPOINT_URL_S3" not in _env(default)
    assert "envFrom" not in default
    args = gateway_parser().parse_args(default["args"])
    assert (args.capture_flush_seconds, args.capture_buffer_mib) == (5.0, 32)
    container = _container(
        render(
            "--set",
            "gateway.dataCapture.endpointURL=http://s3.local:7070,gateway.dataCapture.secretName=capture-s3",
            "--set",
            "gateway.dataCapture.flushSeconds=2,gateway.dataCapture.bufferMiB=8",
        ),
        GATEWAY,
    )
    assert _env(container)["AWS_ENDPOINT_URL_S3"] == "http://s3.local:7070"
    assert container["envFrom"] == [{"secretRef": {"name": "capture-s3"}}]  # never a value in the spec
    args = gateway_parser().parse_args(container["args"])
    assert (args.capture_flush_seconds, args.capture_buffer_mib) == (2.0, 8)


def test_service_monitor_is_off_by_default_and_scrapes_a_metrics_only_service() -> None:
    assert render().kind("ServiceMonitor") == []
    rendered = render("--set", "gateway.metrics.serviceMonitor.enabled=true")
    (monitor,) = rendered.kind("ServiceMonitor")
    metrics = rendered.get("Service", f"{GATEWAY}-metrics")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= metrics["metadata"]["labels"].items()
    assert [p["name"] for p in metrics["spec"]["ports"]] == ["metrics"]
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert "metrics" not in [p["name"] for p in rendered.get("Service", GATEWAY)["spec"]["ports"]]


def _variant_pods(example: str) -> list[dict[str, Any]]:
    """The pod templates and stage pods the operator renders for an example (its golden file,
    which tests/unit/operator/test_render.py keeps equal to the render code's output)."""
    docs = yaml.safe_load_all((REPO / "tests" / "data" / "golden" / f"{example}.yaml").read_text())
    return [
        d["spec"]["template"] if d["kind"] == "Deployment" else d
        for d in docs
        if d["kind"] in ("Deployment", "Pod")
    ]


def _prometheus_label(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def test_pod_monitor_is_off_by_default_and_scrapes_what_serves_metrics_in_every_variant_pod() -> None:
    assert render().kind("PodMonitor") == []
    (monitor,) = render("--set", "variants.podMonitor.enabled=true").kind("PodMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    (scrape,) = monitor["spec"]["podMetricsEndpoints"]
    assert (scrape["path"], scrape["interval"]) == ("/metrics", "30s")
    # The router's series carry their own endpoint label; prometheus-operator's would be the port name.
    assert scrape["honorLabels"] is True
    relabeled = {r["targetLabel"]: r["sourceLabels"] for r in scrape["relabelings"]}
    assert relabeled == {
        "endpoint": [f"__meta_kubernetes_pod_label_{_prometheus_label(contract.LABEL_ENDPOINT)}"],
        "variant": [f"__meta_kubernetes_pod_label_{_prometheus_label(contract.LABEL_VARIANT)}"],
    }
    # What serves /metrics in each shape of variant pod: sageport's model server (single
    # container, multi-model) or the router (Direct, Serial anchors). Each is selected and
    # has the scraped port; Serial stage pods have no such port (the anchor's router speaks
    # for the instance).
    for example in ("realtime-sklearn", "multi-model", "multi-container-direct", "serial-pipeline"):
        for pod in _variant_pods(example):
            labels = pod["metadata"]["labels"]
            assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items(), example
            assert {contract.LABEL_ENDPOINT, contract.LABEL_VARIANT} <= labels.keys()
            scraped = [
                c
                for c in pod["spec"]["containers"]
                if scrape["port"] in [p.get("name") for p in c.get("ports", [])]
            ]
            if pod.get("kind") == "Pod":
                assert scraped == [], example
                continue
            (container,) = scraped
            assert container["name"] in ("model", "sageport-router"), (example, container["name"])
    (namespaced,) = render(
        "--set",
        "variants.podMonitor.enabled=true,variants.podMonitor.labels.release=kps",
        "--set",
        "watchNamespaces={ml,b}",
    ).kind("PodMonitor")
    assert namespaced["spec"]["namespaceSelector"] == {"matchNames": ["b", "ml"]}
    assert namespaced["metadata"]["labels"]["release"] == "kps"


def test_the_local_stacks_prometheus_scrapes_the_gateway_pods_metrics_port(tmp_path: Path) -> None:
    """`make up PROMETHEUS=1` scrapes the gateway through a Service of its own (Debian's
    Prometheus has no Kubernetes discovery): it must select the chart's gateway pods (with the
    values the stack installs) and reach their metrics container port."""
    from sageport_dev import stack

    refs = {"runtime": "sageport/runtime:dev", "operator": "sageport/operator:dev"}
    s3 = stack.S3Server("http://10.85.0.1:9000", "key", "secret", None)
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(stack.local_values(refs, s3, "http://10.85.0.1:19090")))
    rendered = render("--values", str(values))
    template = rendered.get("Deployment", GATEWAY)["spec"]["template"]
    service = stack.gateway_metrics_service()
    assert service["metadata"]["namespace"] == NAMESPACE
    assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
    (port,) = service["spec"]["ports"]
    (container,) = template["spec"]["containers"]
    assert {"name": port["targetPort"], "containerPort": port["port"]} in container["ports"]
    assert port["name"] not in [p["name"] for p in rendered.get("Service", GATEWAY)["spec"]["ports"]]
    assert _env(_container(rendered, OPERATOR))[contract.PROMETHEUS_URL_ENV] == "http://10.85.0.1:19090"


# ---- values and their schema ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--set", "operater.image.tag=x"), "additional properties 'operater' not allowed"),
        (
            ("--set", "gateway.auth.enable=false"),
            "at '/gateway/auth': additional properties 'enable' not allowed",
        ),
        (("--set", "gateway.service.type=Nodeport"), "at '/gateway/service/type': value must be one of"),
        (("--set", "runtime.image.pullPolicy=always"), "at '/runtime/image/pullPolicy'"),
        (
            ("--set-json", 'instanceTypes.extra=[{"name":"local","cpu":"1","memroy":"2Gi"}]'),
            "additional properties 'memroy' not allowed",
        ),
        (("--set-json", 'instanceTypes.extra=[{"name":"local","cpu":"1","memory":"2 GB"}]'), "memory"),
        (("--set", "operator.storage.endpointURL=s3.local:7070"), "/operator/storage/endpointURL"),
        (("--set", "gateway.dataCapture.bufferMiB=0"), "/gateway/dataCapture/bufferMiB"),
        (("--set", "operator.alarms.prometheusUrl=prometheus:9090"), "/operator/alarms/prometheusUrl"),
        (
            ("--set-json", 'operator.imageMap.extra=[{"regex":"x","image":"y"}]'),
            "additional properties 'regex' not allowed",
        ),
        (("--set-json", 'operator.imageMap.extra=[{"image":"y"}]'), "missing property 'match'"),
        (
            ("--set", "operator.alarms.prometheusURL=http://prometheus:9090"),
            "at '/operator/alarms': additional properties 'prometheusURL' not allowed",
        ),
    ],
)
def test_the_schema_rejects_typos_with_the_path_in_the_message(args: tuple[str, ...], message: str) -> None:
    result = helm("template", "sageport", str(CHART), *args, check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr, result.stderr


# Kubernetes structures (ResourceRequirements) are leaves of the values, not chart settings.
_OPAQUE = {"resources"}


def _leaf_paths(values: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(values, dict) and values and prefix.rpartition(".")[2] not in _OPAQUE:
        for key, value in values.items():
            yield from _leaf_paths(value, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix


def _schema_paths(node: dict[str, Any], definitions: dict[str, Any], prefix: str = "") -> Iterator[str]:
    if "$ref" in node:
        node = definitions[node["$ref"].rsplit("/", 1)[-1]]
    properties = node.get("properties")
    if node.get("additionalProperties") is False and properties and prefix.rpartition(".")[2] not in _OPAQUE:
        for key, child in properties.items():
            yield from _schema_paths(child, definitions, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix


def test_values_yaml_and_the_schema_have_the_same_keys() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert set(_leaf_paths(values)) == set(_schema_paths(schema, schema["definitions"])) - {"global"}


def test_the_readme_values_table_documents_every_key() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Helm chart") :]
    section = section[: section.index("\n## ", 1)]
    first_cells = re.findall(r"^\|([^|]+)\|", section, flags=re.MULTILINE)
    documented = {key for cell in first_cells for key in re.findall(r"`([^`]+)`", cell)}
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    missing = {p for p in _leaf_paths(values) if not any(p == d or p.startswith(f"{d}.") for d in documented)}
    assert not missing, f"README's values table lacks {sorted(missing)}"


def test_the_kind_values_file_renders_the_local_setup() -> None:
    """examples/kind-values.yaml (the documented kind path) stays valid against the schema."""
    rendered = render("--values", str(REPO / "examples" / "kind-values.yaml"))
    service = rendered.get("Service", "sageport-gateway")
    assert service["spec"]["type"] == "NodePort"
    assert service["spec"]["ports"][0]["nodePort"] == 30080
    config_map = next(d for d in rendered.kind("ConfigMap") if "02-extra.yaml" in d.get("data", {}))
    [local] = [d for d in yaml.safe_load_all(config_map["data"]["02-extra.yaml"]) if d]
    assert InstanceType.model_validate(local).spec.node_selector == {"sageport.io/local-node": "true"}
    kind_config = yaml.safe_load((REPO / "kind-config.yaml").read_text())
    worker = next(n for n in kind_config["nodes"] if n["role"] == "worker")
    assert worker["labels"] == {"sageport.io/local-node": "true"}
    assert any(m["containerPort"] == 30080 for m in worker["extraPortMappings"])
