"""Output naming, manifests and the spread of objects across workers (sagemaker-semantics.md §1.2-1.3)."""

from __future__ import annotations

import pytest

from sageport.batch.objects import (
    InputError,
    InputObject,
    manifest_objects,
    output_location,
    prefix_objects,
    relative_key,
    shard,
)


@pytest.mark.parametrize(
    ("prefix", "key", "relative"),
    [
        ("in/", "in/input1.csv", "input1.csv"),
        ("in/", "in/dataset01/data.csv", "dataset01/data.csv"),
        ("batch-inference/test.csv", "batch-inference/test.csv", "test.csv"),
        ("data/te", "data/test.csv", "test.csv"),
        ("", "top.csv", "top.csv"),
    ],
)
def test_relative_key(prefix: str, key: str, relative: str) -> None:
    assert relative_key(prefix, key) == relative


@pytest.mark.parametrize(
    ("output_path", "relative", "location"),
    [
        ("s3://b/out", "input1.csv", ("b", "out/input1.csv.out")),
        ("s3://b/out/", "dataset01/data.csv", ("b", "out/dataset01/data.csv.out")),
        ("s3://b/out", "train-00001-of-00100", ("b", "out/train-00001-of-00100.out")),
        ("s3://b/out", "x.csv.gz", ("b", "out/x.csv.gz.out")),
        ("s3://b", "x.csv", ("b", "x.csv.out")),
    ],
)
def test_output_location(output_path: str, relative: str, location: tuple[str, str]) -> None:
    assert output_location(output_path, relative) == location


def test_prefix_listing_skips_folder_markers_and_keeps_sub_folders() -> None:
    objects = prefix_objects(
        "s3://b/in/", [("in/b.csv", 3), ("in/sub/", 0), ("in/sub/c.csv", 4), ("in/a.csv", 1)]
    )
    assert [(o.key, o.relative) for o in objects] == [
        ("in/a.csv", "a.csv"),
        ("in/b.csv", "b.csv"),
        ("in/sub/c.csv", "sub/c.csv"),
    ]
    assert objects[0].uri == "s3://b/in/a.csv"


def test_manifest() -> None:
    manifest = b'[{"prefix": "s3://customer_bucket/some/prefix/"}, "relative/path/to/custdata-1", "relative/path/custdata-2"]'
    objects = manifest_objects(manifest, "s3://m/manifest")
    assert [(o.bucket, o.key, o.relative) for o in objects] == [
        ("customer_bucket", "some/prefix/relative/path/to/custdata-1", "relative/path/to/custdata-1"),
        ("customer_bucket", "some/prefix/relative/path/custdata-2", "relative/path/custdata-2"),
    ]
    with pytest.raises(InputError, match="must be a list"):
        manifest_objects(b'{"prefix": "s3://b/"}', "s3://m/manifest")


def test_shards_are_disjoint_cover_everything_and_balance_bytes() -> None:
    objects = [InputObject("b", f"k{i}", f"k{i}", size) for i, size in enumerate([100, 1, 1, 50, 50, 1])]
    shares = [shard(objects, index, 2) for index in range(2)]
    assert sorted(o for share in shares for o in share) == sorted(objects)
    assert sum(o.size for o in shares[0]) == 102  # 100 + 1 + 1
    assert sum(o.size for o in shares[1]) == 101  # 50 + 50 + 1


def test_one_object_and_many_workers_leaves_the_others_idle() -> None:
    objects = [InputObject("b", "only", "only", 10)]
    assert [len(shard(objects, index, 3)) for index in range(3)] == [1, 0, 0]
