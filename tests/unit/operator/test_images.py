"""The image map: SageMaker's framework images -> sageport's model server, with the chart's own
default table checked against the image URIs the installed SageMaker Python SDK produces."""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from sageport.api.v1alpha1 import ModelStatus
from sageport.operator.reconcile.plan import EndpointPlan, plan_endpoint
from sageport.operator.render import RenderSettings, variant_children
from sageport.operator.render.images import (
    ImageMapError,
    ImageRule,
    ResolvedImage,
    fetched_code_url,
    parse_image_map,
    resolve_image,
)
from sageport.operator.status import (
    Problem,
    VariantObservation,
    VariantPlan,
    endpoint_status,
    model_status,
)
from tests.support.endpoints import kind, resolve_documents
from tests.support.manifests import EXAMPLES, REPO, load_documents

RUNTIME = "sageport/runtime:test"
CHART_VALUES = yaml.safe_load((REPO / "charts" / "sageport" / "values.yaml").read_text())
DEFAULTS = parse_image_map(json.dumps(CHART_VALUES["operator"]["imageMap"]["defaults"]))
SKLEARN = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _retrieve(framework: str, region: str, version: str, **kwargs: Any) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sagemaker import image_uris  # type: ignore[import-untyped]

        return str(image_uris.retrieve(framework, region, version, **kwargs))


@pytest.mark.parametrize(
    "region", ["us-east-1", "eu-west-1", "ap-southeast-2", "cn-north-1", "us-gov-west-1"]
)
@pytest.mark.parametrize(
    ("framework", "version"), [("sklearn", "1.2-1"), ("sklearn", "1.4-2"), ("xgboost", "1.7-1")]
)
def test_the_charts_defaults_map_the_sdks_sklearn_and_xgboost_images_in_every_region(
    framework: str, version: str, region: str
) -> None:
    specified = _retrieve(framework, region, version)
    assert resolve_image(specified, DEFAULTS, RUNTIME) == ResolvedImage(
        specified, RUNTIME, served_by_sageport=True
    )


@pytest.mark.parametrize(
    "specified",
    [
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.5-cpu-py311",  # no torch in the image
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/tensorflow-inference:2.13-cpu",
        "registry.example/team/sagemaker-scikit-learn:1.2-1-cpu-py3",  # a user's own image of that name
        "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn",  # no tag: not the SDK's form
        "ghcr.io/acme/model:1",
    ],
)
def test_other_images_run_as_given(specified: str) -> None:
    assert resolve_image(specified, DEFAULTS, RUNTIME) == ResolvedImage(
        specified, specified, served_by_sageport=False
    )


def test_no_image_is_sageports_model_server_and_so_is_the_runtime_image_named() -> None:
    assert resolve_image(None, DEFAULTS, RUNTIME) == ResolvedImage(RUNTIME, RUNTIME, served_by_sageport=True)
    assert resolve_image(RUNTIME, (), RUNTIME).served_by_sageport


def test_extra_rules_come_first_and_may_use_the_matchs_groups() -> None:
    torch = ImageRule(r".*/pytorch-inference:([0-9.]+)-cpu-.*", r"registry.example/sageport-torch:\1")
    sklearn_elsewhere = ImageRule(r".*/sagemaker-scikit-learn:.*", "registry.example/sklearn-pinned:1")
    rules = (torch, sklearn_elsewhere, *DEFAULTS)
    pytorch = _retrieve(
        "pytorch",
        "us-west-2",
        "2.5",
        py_version="py311",
        instance_type="ml.m5.large",
        image_scope="inference",
    )
    assert resolve_image(pytorch, rules, RUNTIME).resolved == "registry.example/sageport-torch:2.5"
    assert resolve_image(SKLEARN, rules, RUNTIME).resolved == "registry.example/sklearn-pinned:1"


def test_the_table_is_read_from_json_and_bad_entries_are_named() -> None:
    text = '[{"match": "a.*", "image": "x"}, {"match": "b.*", "image": ""}, {"match": "c.*"}]'
    assert parse_image_map(text) == (ImageRule("a.*", "x"), ImageRule("b.*"), ImageRule("c.*"))
    assert parse_image_map("") == ()
    for bad, words in [
        ("{}", "JSON list"),
        ("[{}]", "SAGEPORT_IMAGE_MAP[0] needs a non-empty string 'match'"),
        ('[{"match": "a", "images": "x"}]', "unknown keys: images"),
        ('[{"match": "("}]', "is not a regular expression"),
        ("not json", "not JSON"),
    ]:
        with pytest.raises(ImageMapError, match=words.replace("[", r"\[").replace("]", r"\]")):
            parse_image_map(bad)


def test_script_mode_code_is_fetched_only_for_containers_sageport_serves() -> None:
    env = (("SAGEMAKER_PROGRAM", "inference.py"), ("SAGEMAKER_SUBMIT_DIRECTORY", "s3://b/p/sourcedir.tar.gz"))
    mapped = resolve_image(SKLEARN, DEFAULTS, RUNTIME)
    assert fetched_code_url(env, mapped) == "s3://b/p/sourcedir.tar.gz"
    assert fetched_code_url(env, resolve_image("ghcr.io/acme/model:1", DEFAULTS, RUNTIME)) is None
    repacked = (("SAGEMAKER_SUBMIT_DIRECTORY", "/opt/ml/model/code"),)  # already inside model.tar.gz
    assert fetched_code_url(repacked, mapped) is None


# -- the operator's plan, render and status ---------------------------------------------------------
SETTINGS = RenderSettings(
    runtime_image=RUNTIME,
    image_rules=DEFAULTS,
    storage_env=(("AWS_ENDPOINT_URL", "http://s3.local:7070"),),
    storage_secret="s3-credentials",
)


def _docs(image: str, environment: dict[str, str] | None = None) -> list[dict[str, Any]]:
    docs = load_documents(EXAMPLES / "realtime-sklearn")
    container = kind(docs, "Model")["spec"]["primaryContainer"]
    container["image"] = image
    if environment is not None:
        container["environment"] = environment
    return docs


def _plan(docs: list[dict[str, Any]]) -> EndpointPlan:
    resolved = resolve_documents(docs)
    assert not isinstance(resolved, Problem), resolved
    return plan_endpoint(resolved, SETTINGS)


def _pod(plan: EndpointPlan) -> dict[str, Any]:
    spec: dict[str, Any] = variant_children(plan.variants[0], SETTINGS)[0]["spec"]["template"]["spec"]
    return spec


def test_a_framework_image_runs_sageports_server_and_the_plan_reports_both() -> None:
    result = _plan(_docs(SKLEARN))
    assert _pod(result)["containers"][0]["image"] == RUNTIME
    assert result.plans[0].images == (ResolvedImage(SKLEARN, RUNTIME, served_by_sageport=True),)


def test_script_mode_sourcedir_is_fetched_into_opt_ml_code_and_the_server_pointed_there() -> None:
    env = {
        "SAGEMAKER_PROGRAM": "inference.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": "s3://sagemaker-us-east-1-000000000000/iris/sourcedir.tar.gz",
        "SAGEMAKER_REGION": "us-east-1",
    }
    pod = _pod(_plan(_docs(SKLEARN, env)))
    fetches = {c["name"]: c for c in pod["initContainers"]}
    assert fetches["code-fetch"]["command"][-2:] == [env["SAGEMAKER_SUBMIT_DIRECTORY"], "/opt/ml/code"]
    assert fetches["code-fetch"]["volumeMounts"] == [{"name": "code", "mountPath": "/opt/ml/code"}]
    for same in ("image", "env", "envFrom", "securityContext"):  # the model fetcher's S3 and credentials
        assert fetches["code-fetch"][same] == fetches["model-fetch"][same]
    model = pod["containers"][0]
    seen = {e["name"]: e["value"] for e in model["env"]}
    assert (seen["SAGEMAKER_SUBMIT_DIRECTORY"], seen["SAGEMAKER_PROGRAM"]) == ("/opt/ml/code", "inference.py")
    assert {"name": "code", "mountPath": "/opt/ml/code", "readOnly": True} in model["volumeMounts"]
    assert {"name": "code", "emptyDir": {}} in pod["volumes"]


def test_an_image_of_its_own_keeps_its_script_mode_environment_untouched() -> None:
    env = {"SAGEMAKER_SUBMIT_DIRECTORY": "s3://b/sourcedir.tar.gz"}
    pod = _pod(_plan(_docs("ghcr.io/acme/model:1", env)))
    assert [c["name"] for c in pod["initContainers"]] == ["model-fetch"]
    assert {"name": "SAGEMAKER_SUBMIT_DIRECTORY", "value": "s3://b/sourcedir.tar.gz"} in pod["containers"][0][
        "env"
    ]


def test_the_endpoint_status_reports_deployed_images_resolved_once() -> None:
    plans = (VariantPlan("AllTraffic", 1.0, 1, (ResolvedImage(SKLEARN, RUNTIME, True),)),)
    observed = {"AllTraffic": VariantObservation(ready_instances=1, desired_instances=1)}

    def status(previous: Any, now: datetime) -> Any:
        return endpoint_status(
            previous=previous, generation=1, config_name="c", plans=plans, observed=observed,
            problem=None, deleting=False, now=now,
        )  # fmt: skip

    first = status(None, T0)
    (variant,) = first.production_variants
    assert variant.to_wire()["deployedImages"] == [
        {"specifiedImage": SKLEARN, "resolvedImage": RUNTIME, "resolutionTime": "2026-01-01T00:00:00Z"}
    ]
    assert status(first, T0 + timedelta(minutes=1)) is first  # nothing changed: nothing to write


def test_the_model_status_reports_each_containers_image_and_keeps_its_resolution_time() -> None:
    images = [ResolvedImage(SKLEARN, RUNTIME, True)]
    first = model_status(previous=None, generation=1, problem=None, images=images, now=T0)
    assert first.to_wire()["deployedImages"] == [
        {"specifiedImage": SKLEARN, "resolvedImage": RUNTIME, "resolutionTime": "2026-01-01T00:00:00Z"}
    ]
    assert (
        model_status(previous=first, generation=1, problem=None, images=images, now=T0 + timedelta(hours=1))
        is first
    )
    remapped = [ResolvedImage(SKLEARN, "registry.example/other:1", True)]
    later = model_status(
        previous=first, generation=1, problem=None, images=remapped, now=T0 + timedelta(hours=1)
    )
    assert later.deployed_images is not None
    assert later.deployed_images[0].resolution_time == T0 + timedelta(hours=1)
    invalid = model_status(
        previous=first, generation=2, problem=Problem("InvalidSpec", "x", True), images=[], now=T0
    )
    assert invalid.deployed_images is None
    assert ModelStatus.model_validate(first.to_wire()) == first
