"""The InstanceType catalog sync: the chart's catalog files applied, kept, and pruned."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sageport.operator.catalog import (
    CATALOG_LABEL,
    CatalogError,
    catalog_changes,
    catalog_manifests,
    parse_catalog,
)
from sageport.operator.crdgen import CATALOG_FILE
from sageport.operator.reconcile.catalog import read_catalog, sync_catalog

LOCAL = """
apiVersion: sageport.io/v1alpha1
kind: InstanceType
metadata: {name: local}
spec: {cpu: "1", memory: 1Gi, nodeSelector: {kubernetes.io/hostname: node-1}}
"""


class FakeCatalogApi:
    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.objects = {o["metadata"]["name"]: o for o in objects}
        self.applied: list[str] = []
        self.deleted: list[str] = []

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self.applied.append(manifest["metadata"]["name"])
        self.objects[manifest["metadata"]["name"]] = manifest
        return manifest

    async def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> None:
        assert (kind, namespace) == ("InstanceType", None)
        self.deleted.append(name)
        self.objects.pop(name, None)

    async def list_cluster_objects(self, api_version: str, plural: str) -> list[dict[str, Any]]:
        assert (api_version, plural) == ("sageport.io/v1alpha1", "instancetypes")
        return list(self.objects.values())


def test_the_committed_catalog_parses_and_is_labelled() -> None:
    catalog = parse_catalog([("default", CATALOG_FILE.read_text())])
    assert set(catalog) == {m["metadata"]["name"] for m in catalog_manifests()}
    assert all(m["metadata"]["labels"][CATALOG_LABEL] == "true" for m in catalog.values())
    assert catalog["ml.g5.xlarge"]["spec"]["gpuCount"] == 1


def test_later_entries_override_earlier_ones_and_specs_are_normalised() -> None:
    override = "apiVersion: sageport.io/v1alpha1\nkind: InstanceType\nmetadata: {name: ml.m5.large}\nspec: {cpu: '2', memory: 8Gi}\n"
    catalog = parse_catalog([("default", CATALOG_FILE.read_text()), ("extra", override + "---\n" + LOCAL)])
    assert catalog["ml.m5.large"]["spec"] == {
        "cpu": "2",
        "memory": "8Gi",
        "gpuCount": 0,
        "gpuResourceName": "nvidia.com/gpu",
    }
    assert catalog["local"]["spec"]["nodeSelector"] == {"kubernetes.io/hostname": "node-1"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind: InstanceType\nmetadata: {name: x}\nspec: {cpu: '1', memory: 1Gi, gpus: 1}", "gpus"),
        ("kind: InstanceType\nmetadata: {name: x}\nspec: {cpu: lots, memory: 1Gi}", "cpu"),
        ("kind: Model\nmetadata: {name: x}\nspec: {cpu: '1', memory: 1Gi}", "kind"),
        ("a: [", "not YAML"),
    ],
)
def test_an_invalid_catalog_names_the_source_and_the_field(text: str, message: str) -> None:
    with pytest.raises(CatalogError, match=message) as raised:
        parse_catalog([("02-extra.yaml", text)])
    assert "02-extra.yaml" in str(raised.value)


def test_changes_apply_what_differs_and_prune_only_what_the_catalog_owned() -> None:
    desired = parse_catalog([("extra", LOCAL)])
    same = {**desired["local"], "spec": {**desired["local"]["spec"]}}
    owned_gone = {"metadata": {"name": "old", "labels": {CATALOG_LABEL: "true"}}, "spec": {}}
    users_own = {"metadata": {"name": "mine"}, "spec": {"cpu": "1", "memory": "1Gi"}}
    assert catalog_changes(desired, [same, owned_gone, users_own]) == ([], ["old"])
    edited = {**same, "spec": {**same["spec"], "cpu": "2"}}
    unlabelled = {**same, "metadata": {"name": "local"}}
    for existing in (edited, unlabelled):
        to_apply, to_delete = catalog_changes(desired, [existing])
        assert [m["metadata"]["name"] for m in to_apply] == ["local"]
        assert to_delete == []


async def test_sync_reads_a_mounted_configmap_directory(tmp_path: Path) -> None:
    # A ConfigMap volume: the keys are symlinks into a timestamped directory via ..data.
    data = tmp_path / "..2026_01_01_00_00_00.000000000"
    data.mkdir()
    (data / "01-default.yaml").write_text(CATALOG_FILE.read_text())
    (data / "02-extra.yaml").write_text(LOCAL)
    (tmp_path / "..data").symlink_to(data.name)
    for key in ("01-default.yaml", "02-extra.yaml"):
        (tmp_path / key).symlink_to(f"..data/{key}")
    assert [Path(name).name for name, _ in read_catalog(tmp_path)] == ["01-default.yaml", "02-extra.yaml"]

    stale = {"metadata": {"name": "gone", "labels": {CATALOG_LABEL: "true"}}, "spec": {}}
    api = FakeCatalogApi([stale])
    first = await sync_catalog(api, tmp_path)
    assert "local" in first.applied
    assert len(first.applied) == len(catalog_manifests()) + 1
    assert first.deleted == ("gone",)
    assert first.summary().startswith(f"applied {len(first.applied)} (local, ml.c5.18xlarge,")
    assert first.summary().endswith(", ...); deleted 1 (gone)")
    second = await sync_catalog(api, tmp_path)
    assert second.summary() == "up to date"  # nothing changed: no writes


def test_a_missing_catalog_is_an_error_not_an_empty_catalog(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot read"):
        read_catalog(tmp_path / "absent.yaml")
    with pytest.raises(CatalogError, match=r"no \*\.yaml files"):
        read_catalog(tmp_path)
