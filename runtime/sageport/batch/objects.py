"""Which objects a job reads, what each output is called, and which worker takes which (pure).

Naming (sagemaker-semantics.md §1.3): one output per input object, at
``<S3OutputPath>/<key relative to the input prefix>.out``; sub-folders kept; a ``.csv.gz`` input
(CompressionType Gzip) gives ``.csv.gz.out``, written uncompressed. The relative path starts after
the prefix when the prefix ends in ``/``, else after the prefix's last ``/`` (so a prefix that is a
full key gives the key's own name). A manifest's entries are relative to its ``prefix``.

Spread (§1.2): whole objects per worker, never one object across workers. Every worker lists the
same input, so each computes the same assignment: objects by size, largest first, each to the
worker with the fewest bytes so far (ties to the lower index).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

OUTPUT_SUFFIX = ".out"


class InputError(ValueError):
    """The input data source cannot be read as asked; the message names it."""


@dataclass(frozen=True, order=True)
class InputObject:
    """One input object: where it is and the path its output keeps."""

    bucket: str
    key: str
    relative: str
    size: int = 0

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def parse_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise InputError(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise InputError(f"{uri!r} names no bucket")
    return bucket, key


def relative_key(prefix: str, key: str) -> str:
    """The part of ``key`` its output keeps, for an object listed under ``prefix``."""
    if not key.startswith(prefix):
        raise InputError(f"key {key!r} is not under prefix {prefix!r}")
    cut = len(prefix) if prefix.endswith("/") else prefix.rfind("/") + 1
    return key[cut:]


def output_location(s3_output_path: str, relative: str) -> tuple[str, str]:
    """The (bucket, key) of the output of an input whose relative path is ``relative``."""
    bucket, prefix = parse_s3_uri(s3_output_path)
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, f"{prefix}{relative}{OUTPUT_SUFFIX}"


def prefix_objects(s3_uri: str, listing: Sequence[tuple[str, int]]) -> list[InputObject]:
    """The objects of an ``S3Prefix`` data source from a listing of (key, size) under it.
    Keys ending in ``/`` (folder markers) are not objects to transform."""
    bucket, prefix = parse_s3_uri(s3_uri)
    return sorted(
        InputObject(bucket, key, relative_key(prefix, key), size)
        for key, size in listing
        if not key.endswith("/") and relative_key(prefix, key)
    )


def manifest_objects(manifest: bytes, manifest_uri: str) -> list[InputObject]:
    """The objects a ``ManifestFile`` names: ``[{"prefix": "s3://b/p/"}, "rel/a", "rel/b"]``."""
    try:
        entries = json.loads(manifest)
    except ValueError as error:
        raise InputError(f"manifest {manifest_uri} is not JSON: {error}") from None
    if (
        not isinstance(entries, list)
        or not entries
        or not isinstance(entries[0], dict)
        or not isinstance(entries[0].get("prefix"), str)
        or not all(isinstance(entry, str) for entry in entries[1:])
    ):
        raise InputError(
            f'manifest {manifest_uri} must be a list: [{{"prefix": "s3://bucket/prefix/"}}, "relative/key", ...]'
        )
    bucket, prefix = parse_s3_uri(entries[0]["prefix"])
    return [InputObject(bucket, prefix + entry, entry) for entry in entries[1:]]


def shard(objects: Sequence[InputObject], index: int, count: int) -> list[InputObject]:
    """The objects worker ``index`` of ``count`` takes, in key order."""
    if not 0 <= index < count:
        raise ValueError(f"worker index {index} is outside 0..{count - 1}")
    loads = [0] * count
    mine: list[InputObject] = []
    for item in sorted(objects, key=lambda obj: (-obj.size, obj.bucket, obj.key)):
        worker = min(range(count), key=lambda w: (loads[w], w))
        loads[worker] += max(item.size, 1)
        if worker == index:
            mine.append(item)
    return sorted(mine)


def no_objects_message(s3_uri: str) -> str:
    """SageMaker's text for an input prefix with nothing under it."""
    bucket, _ = parse_s3_uri(s3_uri)
    return (
        f'No S3 objects found under S3 URL "{s3_uri}" given in input data source. Please ensure that '
        f"the bucket exists in the selected region, that objects exist under that S3 prefix, and that "
        f'the role has "s3:ListBucket" permissions on bucket "{bucket}".'
    )
