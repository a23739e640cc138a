"""sageport.storage.objects (S3 on the event loop: aiohttp + botocore's signer) against a real S3
server (versitygw), read back with plain boto3: what it writes is what S3 serves, and what S3 holds
is what it reads."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from sageport.storage.objects import ObjectStore, S3Error
from sageport.storage.s3 import s3_client
from tests.support.s3 import S3, versitygw

BUCKET = "objects"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3]:
    with versitygw(tmp_path_factory.mktemp("s3")) as server:
        server.client().create_bucket(Bucket=BUCKET)
        yield server


@pytest.fixture
async def store(s3: S3, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ObjectStore]:
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    async with aiohttp.ClientSession() as session:
        yield ObjectStore(session, s3_client())


async def test_put_is_what_boto3_reads_with_its_metadata(s3: S3, store: ObjectStore) -> None:
    body = os.urandom(300_000)
    await store.put(BUCKET, "dir/a b+c.out", body, "text/csv", {"sageport-transform-job": "uid-1"})
    got = s3.client().get_object(Bucket=BUCKET, Key="dir/a b+c.out")
    assert got["Body"].read() == body
    assert got["ContentType"] == "text/csv"
    assert got["Metadata"] == {"sageport-transform-job": "uid-1"}


async def test_read_and_head_see_what_boto3_wrote(s3: S3, store: ObjectStore) -> None:
    s3.client().put_object(Bucket=BUCKET, Key="in/x.csv", Body=b"1,2\n3,4\n", Metadata={"k": "v"})
    assert await store.read(BUCKET, "in/x.csv") == b"1,2\n3,4\n"
    head = await store.head(BUCKET, "in/x.csv")
    assert head is not None
    assert (head["content-length"], head["x-amz-meta-k"]) == ("8", "v")


async def test_get_spills_what_is_over_the_memory_limit(s3: S3, store: ObjectStore, tmp_path: Path) -> None:
    body = os.urandom(2_000_000)
    s3.client().put_object(Bucket=BUCKET, Key="big", Body=body)
    assert await store.get(BUCKET, "big", str(tmp_path / "unused"), len(body)) == body
    spilled = tmp_path / "spill"
    assert await store.get(BUCKET, "big", str(spilled), 1000) is None
    assert spilled.read_bytes() == body


async def test_an_absent_object(store: ObjectStore) -> None:
    assert await store.head(BUCKET, "nothing/here") is None
    with pytest.raises(S3Error) as raised:
        await store.read(BUCKET, "nothing/here")
    assert raised.value.not_found
