"""Fetch a model artifact (s3://, http(s)://, file:// or a local/PVC path) into a directory.

A single archive (``.tar.gz``, ``.tgz``, ``.tar``) is unpacked in place of being copied; an S3
prefix or a local directory is copied file by file, keeping relative paths.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath
from typing import Any

from sageport.storage.archive import is_archive_name, unpack
from sageport.storage.s3 import s3_client

log = logging.getLogger(__name__)

HTTP_TIMEOUT_SECONDS = float(os.environ.get("SAGEPORT_STORAGE_HTTP_TIMEOUT", "60"))
_CHUNK = 1 << 20


class FetchError(RuntimeError):
    """The artifact could not be fetched; the message says what and where."""


class ArtifactMissingError(FetchError):
    """Nothing at all is at the URL (no object, no prefix, no local path)."""


def fetch(url: str, destination: str | Path) -> Path:
    """Place the artifact named by ``url`` into ``destination`` (created if missing)."""
    dest = Path(destination)
    parsed = urllib.parse.urlparse(url)
    scheme = parsed.scheme.lower()
    if scheme in ("", "file") and not _local_path(url, parsed).exists():
        # Checked before creating ``dest``, which may be the very path asked for.
        raise ArtifactMissingError(f"local artifact {url!r} does not exist")
    dest.mkdir(parents=True, exist_ok=True)
    if scheme == "s3":
        _fetch_s3(parsed.netloc, parsed.path.lstrip("/"), dest)
    elif scheme in ("http", "https"):
        _fetch_http(url, dest)
    elif scheme in ("", "file"):
        _fetch_local(_local_path(url, parsed), dest)
    else:
        raise FetchError(f"unsupported artifact URL scheme {scheme!r} in {url!r}")
    return dest


def _local_path(url: str, parsed: urllib.parse.ParseResult) -> Path:
    return Path(urllib.request.url2pathname(parsed.path)) if parsed.scheme.lower() == "file" else Path(url)


def _place_file(source: Path, name: str, dest: Path) -> None:
    """Unpack an archive, or copy a plain file under its own name."""
    if is_archive_name(name):
        unpack(source, dest)
    else:
        shutil.copyfile(source, dest / name)


def _fetch_local(source: Path, dest: Path) -> None:
    if source.is_dir():
        if source.resolve() == dest.resolve():
            return
        shutil.copytree(source, dest, dirs_exist_ok=True, symlinks=False)
        return
    _place_file(source, source.name, dest)


def _fetch_http(url: str, dest: Path) -> None:
    name = PurePosixPath(urllib.parse.urlparse(url).path).name or "model"
    with tempfile.TemporaryDirectory(dir=dest, prefix=".fetch-") as scratch:
        download = Path(scratch) / name
        try:
            with (
                urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_SECONDS) as response,
                download.open("wb") as out,
            ):
                shutil.copyfileobj(response, out, _CHUNK)
        except OSError as exc:  # URLError and HTTPError are OSErrors
            raise FetchError(f"download of {url!r} failed: {exc}") from exc
        _place_file(download, name, dest)


def _relative_key(key: str, prefix: str) -> str:
    relative = key[len(prefix) :].lstrip("/")
    parts = PurePosixPath(relative).parts
    if not relative or ".." in parts or relative.startswith("/"):
        raise FetchError(f"refusing S3 key {key!r}: it does not map to a path inside the destination")
    return relative


def _fetch_s3(bucket: str, key: str, dest: Path) -> None:
    from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

    if not bucket:
        raise FetchError("s3 URL has no bucket")
    client = s3_client()
    try:
        if key and not key.endswith("/") and _s3_object_exists(client, bucket, key):
            name = PurePosixPath(key).name
            with tempfile.TemporaryDirectory(dir=dest, prefix=".fetch-") as scratch:
                download = Path(scratch) / name
                client.download_file(bucket, key, str(download))
                _place_file(download, name, dest)
            return
        prefix = key if not key or key.endswith("/") else key + "/"
        found = False
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                object_key = item["Key"]
                if object_key.endswith("/"):
                    continue  # "directory" marker objects
                target = dest / _relative_key(object_key, prefix)
                target.parent.mkdir(parents=True, exist_ok=True)
                client.download_file(bucket, object_key, str(target))
                found = True
        if not found:
            raise ArtifactMissingError(f"no object or prefix at s3://{bucket}/{key}")
    except (BotoCoreError, ClientError) as exc:
        raise FetchError(f"download of s3://{bucket}/{key} failed: {exc}") from exc


def _s3_object_exists(client: Any, bucket: str, key: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True
