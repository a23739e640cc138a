"""The generated CRDs: structural, current, and friendly to kubectl."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sageport.operator import crdgen

CORE_SHORT_NAMES = {
    "ep",
    "po",
    "svc",
    "deploy",
    "cm",
    "ns",
    "no",
    "pv",
    "pvc",
    "sa",
    "rs",
    "ds",
    "sts",
    "hpa",
    "pdb",
}


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, value in node.items():
            found.extend(_walk(value, f"{path}.{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(_walk(value, f"{path}[{i}]"))
    return found


@pytest.mark.parametrize("kind", crdgen.KINDS, ids=lambda k: k.kind)
def test_schema_is_structural(kind: crdgen.Kind) -> None:
    schema = crdgen.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert "$ref" not in node, path
        assert "anyOf" not in node, path
        assert "oneOf" not in node, path
        assert "title" not in node, path
        if "properties" in node:
            assert node.get("type") == "object", path
            assert "additionalProperties" not in node, path
        for bound in ("exclusiveMinimum", "exclusiveMaximum"):
            assert node.get(bound, True) is True, path  # OpenAPI v3.0 boolean form


def test_committed_files_are_current() -> None:
    assert crdgen.main(["--check"]) == 0, "run `make manifests`"


def test_names_printer_columns_and_immutability() -> None:
    crds = {k.kind: crdgen.crd(k) for k in crdgen.KINDS}
    short = [s for c in crds.values() for s in c["spec"]["names"]["shortNames"]]
    assert not CORE_SHORT_NAMES & set(short)
    assert len(short) == len(set(short))
    assert all(c["spec"]["names"]["categories"] == ["sageport"] for c in crds.values())
    endpoint_columns = [
        col["name"] for col in crds["Endpoint"]["spec"]["versions"][0]["additionalPrinterColumns"]
    ]
    assert endpoint_columns[:3] == ["Ready", "Status", "Config"]
    assert "Age" in endpoint_columns
    for kind in ("Model", "EndpointConfig", "TransformJob"):
        # Immutable but for tags (AddTags/DeleteTags): each other field keeps its value and its presence.
        spec = crds[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        fields = sorted(set(spec["properties"]) - {"tags"})
        assert "x-kubernetes-validations" not in spec["properties"]["tags"]
        for name in fields:
            assert spec["properties"][name]["x-kubernetes-validations"][-1]["rule"] == "self == oldSelf"
        presence = spec["x-kubernetes-validations"][-1]["rule"]
        assert presence == " && ".join(f"has(self.{n}) == has(oldSelf.{n})" for n in fields)
    assert crds["InstanceType"]["spec"]["scope"] == "Cluster"
    variants = crds["EndpointConfig"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "spec"
    ]["properties"]["productionVariants"]
    assert variants["x-kubernetes-list-type"] == "map"
    assert variants["x-kubernetes-list-map-keys"] == ["variantName"]


def test_catalog_covers_common_families() -> None:
    from sageport.operator.catalog import default_catalog

    catalog = default_catalog()
    for family in ("c5", "m5", "r5", "g4dn", "g5", "g6", "p3", "p4d", "p5", "inf2"):
        assert any(name.startswith(f"ml.{family}.") for name in catalog), family
    g5 = catalog["ml.g5.xlarge"]
    assert (g5.gpu_count, g5.gpu_product, g5.cpu, g5.memory) == (1, "NVIDIA-A10G", "3600m", "14745Mi")
    assert catalog["ml.p4d.24xlarge"].gpu_count == 8
    assert catalog["ml.inf2.xlarge"].gpu_resource_name == "aws.amazon.com/neuron"
    assert catalog["ml.m5.large"].gpu_count == 0
    assert catalog["ml.m5.large"].tolerations is None


def test_the_chart_carries_the_same_crds() -> None:
    files = crdgen.generated_files()
    for kind in crdgen.KINDS:
        name = f"sageport.io_{kind.plural}.yaml"
        assert files[crdgen.CHART_CRD_DIR / name] == files[crdgen.CRD_DIR / name]
    assert crdgen.CHART_CRD_DIR.is_relative_to(crdgen.CHART_DIR)  # Helm reads only the chart


def test_check_fails_on_a_crd_no_kind_generates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Write mode into a scratch copy of the layout, then leave a CRD of a removed kind behind.
    monkeypatch.setattr(crdgen, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(crdgen, "CRD_DIR", tmp_path / "crds")
    monkeypatch.setattr(crdgen, "CHART_CRD_DIR", tmp_path / "chart" / "files" / "crds")
    monkeypatch.setattr(crdgen, "CATALOG_FILE", tmp_path / "chart" / "files" / "instance-types.yaml")
    assert crdgen.main([]) == 0
    assert crdgen.main(["--check"]) == 0
    leftover = tmp_path / "chart" / "files" / "crds" / "sageport.io_widgets.yaml"
    leftover.write_text("kind: CustomResourceDefinition\n")
    assert crdgen.main(["--check"]) == 1
    assert "not generated: chart/files/crds/sageport.io_widgets.yaml" in capsys.readouterr().err
    assert crdgen.main([]) == 0
    assert not leftover.exists()
