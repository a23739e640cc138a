"""Splitting and batching (sagemaker-semantics.md §1.4)."""

from __future__ import annotations

import re
import struct

import pytest

from sageport.batch.records import (
    MIB,
    Batch,
    BatchStrategy,
    Record,
    RecordError,
    SplitType,
    batch,
    line_batches,
    masked_crc32c,
    recordio_frame,
    split,
    tfrecord_frame,
)


def test_line_records_keep_their_newline_and_the_last_line_may_have_none() -> None:
    records = split(b"1,2\n3,4\n5,6", SplitType.LINE)
    assert [r.payload for r in records] == [b"1,2\n", b"3,4\n", b"5,6"]
    assert split(b"1,2\n", SplitType.LINE) == [Record(b"1,2\n", b"1,2\n")]
    assert split(b"", SplitType.LINE) == []


def test_split_none_is_the_whole_object() -> None:
    assert split(b"a\nb\n", SplitType.NONE) == [Record(b"a\nb\n", b"a\nb\n")]


def test_recordio_single_record_strips_framing_multi_record_keeps_it() -> None:
    data = recordio_frame(b"abcde") + recordio_frame(b"xy")
    # magic, length, payload, zero padding to 4 bytes
    assert data[:8] == struct.pack("<II", 0xCED7230A, 5)
    assert data[8:16] == b"abcde\0\0\0"
    records = split(data, SplitType.RECORD_IO)
    assert [r.payload for r in records] == [b"abcde", b"xy"]
    assert b"".join(r.framed for r in records) == data
    single = batch(records, SplitType.RECORD_IO, BatchStrategy.SINGLE_RECORD, 6)
    assert [b.body for b in single] == [b"abcde", b"xy"]
    multi = batch(records, SplitType.RECORD_IO, BatchStrategy.MULTI_RECORD, 6)
    assert [b.body for b in multi] == [data]


def test_recordio_payload_holding_the_magic_number_comes_back_whole() -> None:
    payload = b"ab" + struct.pack("<I", 0xCED7230A) + b"cd"
    (record,) = split(recordio_frame(payload), SplitType.RECORD_IO)
    assert record.payload == payload


def test_recordio_garbage_is_an_error() -> None:
    with pytest.raises(RecordError, match="magic"):
        split(b"\0" * 12, SplitType.RECORD_IO)
    with pytest.raises(RecordError, match="truncated"):
        split(recordio_frame(b"abcdef")[:10], SplitType.RECORD_IO)


def test_tfrecord_framing() -> None:
    # A known vector: CRC-32C("123456789") = 0xE3069283.
    from sageport.batch.records import crc32c

    assert crc32c(b"123456789") == 0xE3069283
    data = tfrecord_frame(b"hello") + tfrecord_frame(b"")
    assert data[:8] == struct.pack("<Q", 5)
    assert data[8:12] == struct.pack("<I", masked_crc32c(struct.pack("<Q", 5)))
    records = split(data, SplitType.TF_RECORD)
    assert [r.payload for r in records] == [b"hello", b""]
    assert b"".join(r.framed for r in records) == data
    assert [b.body for b in batch(records, SplitType.TF_RECORD, BatchStrategy.SINGLE_RECORD, 1)] == [
        b"hello",
        b"",
    ]
    with pytest.raises(RecordError, match="checksum"):
        split(b"\x06" + data[1:], SplitType.TF_RECORD)


def test_multi_record_packs_whole_records_up_to_max_payload_in_mib() -> None:
    line = b"x" * (MIB // 4 - 1) + b"\n"  # four of these are exactly 1 MiB
    records = split(line * 9, SplitType.LINE)
    batches = batch(records, SplitType.LINE, BatchStrategy.MULTI_RECORD, 1)
    assert [(b.first, b.count) for b in batches] == [(0, 4), (4, 4), (8, 1)]
    assert all(len(b.body) <= MIB for b in batches)
    assert b"".join(b.body for b in batches) == line * 9  # contiguous slices, in order


def test_multi_record_with_no_limit_is_one_body() -> None:
    records = split(b"a\nb\nc\n", SplitType.LINE)
    assert batch(records, SplitType.LINE, BatchStrategy.MULTI_RECORD, 0) == [Batch(b"a\nb\nc\n", 0, 3)]


def test_single_record_sends_each_line_with_its_newline() -> None:
    records = split(b"a\nb\n", SplitType.LINE)
    assert batch(records, SplitType.LINE, BatchStrategy.SINGLE_RECORD, 6) == [
        Batch(b"a\n", 0, 1),
        Batch(b"b\n", 1, 1),
    ]


def test_a_record_over_max_payload_is_an_error() -> None:
    records = split(b"a\n" + b"b" * (MIB + 1) + b"\n", SplitType.LINE)
    with pytest.raises(RecordError, match=r"record 2 .* larger than MaxPayloadInMB=1"):
        batch(records, SplitType.LINE, BatchStrategy.MULTI_RECORD, 1)


def test_split_none_over_max_payload_is_an_error() -> None:
    records = split(b"z" * (MIB + 1), SplitType.NONE)
    with pytest.raises(RecordError, match="over MaxPayloadInMB=1"):
        batch(records, SplitType.NONE, BatchStrategy.MULTI_RECORD, 1)


@pytest.mark.parametrize("payload_mb", [0, 1, 2])
@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"a\n",
        b"no newline",
        b"1,2\n3,4\n5,6",
        b"\n\n\n",
        b"x" * (MIB - 1) + b"\n" + b"y\n" * 10,  # a record of exactly 1 MiB, then small ones
        b"x" * MIB + b"\n" + b"y\n",  # a record over 1 MiB
        b"".join(b"%d,abc\n" % i for i in range(300_000)),  # about 3 MiB of lines
        b"".join(b"%d\n" % i for i in range(200_000)) + b"last",
    ],
    ids=lambda d: f"{len(d)}b" if isinstance(d, bytes) else str(d),
)
def test_line_batches_are_the_general_multi_record_batches(data: bytes, payload_mb: int) -> None:
    def general() -> tuple[int, list[Batch]]:
        records = split(data, SplitType.LINE)
        return len(records), batch(records, SplitType.LINE, BatchStrategy.MULTI_RECORD, payload_mb)

    try:
        expected = general()
    except RecordError as error:
        with pytest.raises(RecordError, match=re.escape(str(error))):
            line_batches(data, payload_mb)
        return
    assert line_batches(data, payload_mb) == expected
