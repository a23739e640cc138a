"""The image writer's pure parts: deterministic layer tars and the OCI layout ctr imports."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from sageport_dev import oci
from sageport_dev.images import IMAGES_DIR, image_tar


def _tree(root: Path, mtime: int) -> Path:
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/tool").write_text("#!/bin/sh\necho hi\n")
    (root / "usr/bin/tool").chmod(0o755)
    (root / "usr/bin/tool-link").hardlink_to(root / "usr/bin/tool")
    (root / "usr/bin/alias").symlink_to("tool")
    (root / "opt/ml/model").mkdir(parents=True)
    (root / "b.txt").write_text("b")
    (root / "a.txt").write_text("a")
    for path in [*root.rglob("*"), root]:
        if not path.is_symlink():
            os.utime(path, (mtime, mtime))
    return root


def _layer(root: Path, owner: oci.Owner = oci.root_owner) -> tuple[oci.Blob, bytes]:
    out = io.BytesIO()
    blob = oci.write_layer(root, out, owner)
    return blob, out.getvalue()


def test_same_tree_gives_same_digest_whatever_the_mtimes(tmp_path: Path) -> None:
    first, data = _layer(_tree(tmp_path / "one", mtime=1_000_000))
    second, _ = _layer(_tree(tmp_path / "two", mtime=2_000_000))
    assert first == second
    assert first.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert first.size == len(data)


def test_layer_entries_are_sorted_numeric_and_fixed(tmp_path: Path) -> None:
    owned = {"opt/ml/model"}
    _, data = _layer(
        _tree(tmp_path, mtime=1_000_000), lambda p, _st: (65532, 65532) if p in owned else (0, 0)
    )
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        names = list(members)
        assert names == [
            "a.txt",
            "b.txt",
            "opt",
            "opt/ml",
            "opt/ml/model",
            "usr",
            "usr/bin",
            "usr/bin/alias",
            "usr/bin/tool",
            "usr/bin/tool-link",
        ]
        assert {m.mtime for m in members.values()} == {oci.MTIME}
        assert {(m.uname, m.gname) for m in members.values()} == {("", "")}
        assert (members["opt/ml/model"].uid, members["opt/ml/model"].gid) == (65532, 65532)
        assert (members["opt/ml"].uid, members["usr/bin/tool"].uid) == (0, 0)
        assert members["usr/bin/alias"].issym()
        assert members["usr/bin/alias"].linkname == "tool"
        assert members["usr/bin/tool"].mode == 0o755
        assert members["usr/bin/tool-link"].islnk()
        assert members["usr/bin/tool-link"].linkname == "usr/bin/tool"
        file = tar.extractfile("usr/bin/tool")
        assert file is not None
        assert file.read() == b"#!/bin/sh\necho hi\n"


def _image(tmp_path: Path) -> tuple[bytes, list[oci.Layer]]:
    layers = []
    for name in ("base", "app"):
        root = tmp_path / name
        (root / name).mkdir(parents=True)
        (root / name / "file").write_text(name)
        path = tmp_path / f"{name}.tar"
        with path.open("wb") as layer_out:
            blob = oci.write_layer(root, layer_out)
        layers.append(oci.Layer(path, blob, f"made {name}"))
    config = oci.image_config(
        layers,
        env={"PATH": "/usr/bin", "PYTHONPATH": "/opt/sageport/lib"},
        cmd=["serve"],
        user="65532:65532",
        working_dir="/opt/ml",
        labels={"com.amazonaws.sagemaker.capabilities.multi-models": "true"},
        exposed_ports=["8080/tcp"],
    )
    out = io.BytesIO()
    oci.write_image_layout(out, "docker.io/sageport/runtime:0.1.0-0123456789ab", config, layers)
    return out.getvalue(), layers


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    file = tar.extractfile(member)
    assert file is not None
    return file.read()


def test_image_layout_is_what_ctr_imports(tmp_path: Path) -> None:
    data, layers = _image(tmp_path)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
        files = {m.name: _read(tar, m) for m in tar.getmembers() if m.isfile()}
    assert names[:2] == ["blobs", "blobs/sha256"]
    assert names[-2:] == ["index.json", "oci-layout"]
    assert names[2:-2] == sorted(names[2:-2])
    for name, content in files.items():  # every blob is named by its digest
        if name.startswith("blobs/"):
            assert name == f"blobs/sha256/{hashlib.sha256(content).hexdigest()}"
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}

    index = json.loads(files["index.json"])
    assert index["schemaVersion"] == 2
    (entry,) = index["manifests"]
    assert entry["mediaType"] == oci.MANIFEST_MEDIA_TYPE
    assert entry["annotations"] == {
        "io.containerd.image.name": "docker.io/sageport/runtime:0.1.0-0123456789ab",
        "org.opencontainers.image.ref.name": "0.1.0-0123456789ab",
    }
    assert entry["platform"] == {"architecture": "amd64", "os": "linux"}

    manifest_bytes = files[f"blobs/sha256/{entry['digest'].removeprefix('sha256:')}"]
    assert len(manifest_bytes) == entry["size"]
    manifest = json.loads(manifest_bytes)
    assert manifest["mediaType"] == oci.MANIFEST_MEDIA_TYPE
    assert manifest["config"]["mediaType"] == oci.CONFIG_MEDIA_TYPE
    assert [(d["mediaType"], d["digest"], d["size"]) for d in manifest["layers"]] == [
        (oci.LAYER_MEDIA_TYPE, layer.blob.digest, layer.blob.size) for layer in layers
    ]

    config = json.loads(files[f"blobs/sha256/{manifest['config']['digest'].removeprefix('sha256:')}"])
    assert config["rootfs"] == {"type": "layers", "diff_ids": [layer.blob.digest for layer in layers]}
    assert (config["architecture"], config["os"]) == ("amd64", "linux")
    assert config["config"] == {
        "Env": ["PATH=/usr/bin", "PYTHONPATH=/opt/sageport/lib"],
        "Cmd": ["serve"],
        "User": "65532:65532",
        "WorkingDir": "/opt/ml",
        "Labels": {"com.amazonaws.sagemaker.capabilities.multi-models": "true"},
        "ExposedPorts": {"8080/tcp": {}},
    }
    assert [h["created_by"] for h in config["history"]] == ["made base", "made app"]


def test_image_layout_is_deterministic(tmp_path: Path) -> None:
    first, _ = _image(tmp_path / "one")
    second, _ = _image(tmp_path / "two")
    assert hashlib.sha256(first).digest() == hashlib.sha256(second).digest()


def test_image_tar_is_named_by_image_and_hash() -> None:
    assert (
        image_tar("docker.io/sageport/runtime:0.1.0-0123456789ab") == IMAGES_DIR / "runtime-0123456789ab.tar"
    )
    assert image_tar("docker.io/sageport/operator:1.0.0-rc1-abcdefabcdef") == (
        IMAGES_DIR / "operator-abcdefabcdef.tar"
    )
    with pytest.raises(ValueError, match="not a sageport image ref"):
        image_tar("docker.io/library/python:3.11")
