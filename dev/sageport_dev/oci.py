"""Deterministic layer tars and OCI image layouts, written without a container engine.

Pure file-format code (no debootstrap, no uv, no containerd): ``dev/sageport_dev/images.py``
decides what goes into an image, this module writes it. The same input always gives the same
bytes: entries sorted by path, one fixed mtime, numeric owners without names, no xattrs, and
JSON with sorted keys. Layers are uncompressed tars, so a layer's digest is also its diff_id.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

MTIME = 0  # every entry of every tar we write
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
# `ctr images import` names the image after the first annotation; other tools read the second.
CONTAINERD_NAME_ANNOTATION = "io.containerd.image.name"
REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"

Owner = Callable[[str, os.stat_result], tuple[int, int]]


def keep_owner(_path: str, st: os.stat_result) -> tuple[int, int]:
    """Owners as they are on disk (a root file system made by debootstrap)."""
    return st.st_uid, st.st_gid


def root_owner(_path: str, _st: os.stat_result) -> tuple[int, int]:
    return 0, 0


@dataclass(frozen=True)
class Blob:
    """A content-addressed blob: ``sha256:<hex>`` and its size in bytes."""

    digest: str
    size: int

    @property
    def hex(self) -> str:
        return self.digest.removeprefix("sha256:")

    def descriptor(self, media_type: str, **extra: Any) -> dict[str, Any]:
        return {"mediaType": media_type, "digest": self.digest, "size": self.size, **extra}


def blob_of(data: bytes) -> Blob:
    return Blob(f"sha256:{hashlib.sha256(data).hexdigest()}", len(data))


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class _HashingWriter(io.RawIOBase):
    """Passes writes through to a file while hashing and counting them."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._out.write(view)
        self._sha.update(view)
        self.size += len(view)
        return len(view)

    def blob(self) -> Blob:
        return Blob(f"sha256:{self._sha.hexdigest()}", self.size)


def _walk(root: Path, rel: str = "") -> Iterator[tuple[str, Path]]:
    """Every path below ``root`` (not ``root`` itself), depth first, sorted by name at each level."""
    base = root / rel if rel else root
    for name in sorted(os.listdir(base)):
        path = base / name
        rel_path = f"{rel}/{name}" if rel else name
        yield rel_path, path
        if path.is_dir() and not path.is_symlink():
            yield from _walk(root, rel_path)


def _tarinfo(name: str, st: os.stat_result, owner: tuple[int, int]) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = owner
    info.uname = info.gname = ""
    info.mtime = MTIME
    return info


def write_layer(root: Path, out: BinaryIO, owner: Owner = root_owner) -> Blob:
    """Tar the tree under ``root`` (its contents, not ``root`` itself) into ``out``.

    Regular files, directories, symlinks and hard links are kept; device nodes, fifos and
    sockets are skipped (the runtime makes /dev). ``owner(path, stat)`` gives each entry's
    numeric uid and gid. Returns the tar's digest and size.
    """
    hashing = _HashingWriter(out)
    seen: dict[tuple[int, int], str] = {}  # (st_dev, st_ino) -> first path, for hard links
    with tarfile.open(fileobj=hashing, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name, path in _walk(root):
            st = path.lstat()
            info = _tarinfo(name, st, owner(name, st))
            if stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif stat.S_ISLNK(st.st_mode):
                info.type = tarfile.SYMTYPE
                info.linkname = os.readlink(path)
                tar.addfile(info)
            elif stat.S_ISREG(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in seen:
                    info.type = tarfile.LNKTYPE
                    info.linkname = seen[key]
                    tar.addfile(info)
                    continue
                seen[key] = name
                info.size = st.st_size
                with path.open("rb") as data:
                    tar.addfile(info, data)
    return hashing.blob()


@dataclass(frozen=True)
class Layer:
    """A layer tar on disk, its blob (digest = diff_id, uncompressed) and a history note."""

    path: Path
    blob: Blob
    created_by: str


def image_config(
    layers: Sequence[Layer],
    *,
    env: Mapping[str, str],
    cmd: Sequence[str],
    user: str,
    working_dir: str,
    labels: Mapping[str, str],
    exposed_ports: Sequence[str] = (),
    entrypoint: Sequence[str] = (),
) -> dict[str, Any]:
    """The OCI image config: runtime defaults plus ``rootfs.diff_ids`` in layer order."""
    config: dict[str, Any] = {
        "Env": [f"{key}={value}" for key, value in env.items()],
        **({"Entrypoint": list(entrypoint)} if entrypoint else {}),
        "Cmd": list(cmd),
        "User": user,
        "WorkingDir": working_dir,
        "Labels": dict(labels),
    }
    if exposed_ports:
        config["ExposedPorts"] = {port: {} for port in exposed_ports}
    return {
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [layer.blob.digest for layer in layers]},
        "history": [{"created_by": layer.created_by} for layer in layers],
    }


def image_manifest(config: Blob, layers: Sequence[Layer]) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": config.descriptor(CONFIG_MEDIA_TYPE),
        "layers": [layer.blob.descriptor(LAYER_MEDIA_TYPE) for layer in layers],
    }


def image_index(manifest: Blob, ref: str) -> dict[str, Any]:
    """``index.json``: one manifest, named ``ref`` (fully qualified, with its tag)."""
    return {
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": [
            manifest.descriptor(
                MANIFEST_MEDIA_TYPE,
                annotations={CONTAINERD_NAME_ANNOTATION: ref, REF_NAME_ANNOTATION: ref.rsplit(":", 1)[1]},
                platform={"architecture": "amd64", "os": "linux"},
            )
        ],
    }


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, MTIME
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, MTIME
    tar.addfile(info)


def write_image_layout(out: BinaryIO, ref: str, config: Mapping[str, Any], layers: Sequence[Layer]) -> Blob:
    """Write an OCI image layout as a tar (what ``ctr images import`` reads); return the manifest blob.

    The layer tars are streamed from their files; ``config`` is :func:`image_config`'s output.
    """
    config_bytes = canonical_json(config)
    config_blob = blob_of(config_bytes)
    manifest_bytes = canonical_json(image_manifest(config_blob, layers))
    manifest_blob = blob_of(manifest_bytes)
    blobs: dict[str, bytes | Path] = {config_blob.hex: config_bytes, manifest_blob.hex: manifest_bytes}
    blobs.update({layer.blob.hex: layer.path for layer in layers})
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _add_dir(tar, "blobs")
        _add_dir(tar, "blobs/sha256")
        for hex_digest in sorted(blobs):
            content = blobs[hex_digest]
            name = f"blobs/sha256/{hex_digest}"
            if isinstance(content, bytes):
                _add_bytes(tar, name, content)
                continue
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = content.stat().st_size, 0o644, MTIME
            with content.open("rb") as data:
                tar.addfile(info, data)
        _add_bytes(tar, "index.json", canonical_json(image_index(manifest_blob, ref)))
        _add_bytes(tar, "oci-layout", canonical_json({"imageLayoutVersion": "1.0.0"}))
    return manifest_blob
