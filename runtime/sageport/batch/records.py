"""Splitting an input object into records and packing records into request bodies (pure).

SageMaker's rules (reference: sagemaker-semantics.md §1.4):

- ``SplitType`` ``None``: the whole object is one body; ``Line``: records end at ``\\n`` (each
  record keeps its newline); ``RecordIO``: MXNet RecordIO framing; ``TFRecord``: TFRecord framing.
- ``BatchStrategy`` ``SingleRecord`` sends one record per request, without its binary framing;
  ``MultiRecord`` sends as many whole records as fit in ``MaxPayloadInMB`` (MiB), framing kept, so
  a body is a contiguous slice of the (decompressed) object. Records never cross objects.
- A record larger than ``MaxPayloadInMB`` is an error; ``0`` means no limit (SageMaker streams the
  object then).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

MIB = 1024 * 1024


class SplitType(StrEnum):
    NONE = "None"
    LINE = "Line"
    RECORD_IO = "RecordIO"
    TF_RECORD = "TFRecord"


class BatchStrategy(StrEnum):
    SINGLE_RECORD = "SingleRecord"
    MULTI_RECORD = "MultiRecord"


class RecordError(ValueError):
    """The object cannot be split or batched as asked; the message says why."""


class Record(NamedTuple):
    """One record: ``framed`` as it is in the object (what MultiRecord sends), ``payload`` without
    binary framing (what SingleRecord sends). For ``Line`` and ``None`` they are the same bytes."""

    framed: bytes
    payload: bytes


@dataclass(frozen=True)
class Batch:
    """One request body and the records it carries: ``records[first:first + count]``."""

    body: bytes
    first: int
    count: int


# --- splitting ------------------------------------------------------------------------------


def split(data: bytes, split_type: SplitType) -> list[Record]:
    """The records of one (already decompressed) object, in file order."""
    if split_type is SplitType.NONE:
        return [Record(data, data)]
    if split_type is SplitType.LINE:
        return [Record(line, line) for line in split_lines(data)]
    if split_type is SplitType.RECORD_IO:
        return list(_recordio(data))
    return list(_tfrecord(data))


def split_lines(data: bytes) -> list[bytes]:
    """Lines ending at ``\\n``, each keeping its ``\\n`` (the last one may have none)."""
    if not data:
        return []
    parts = data.split(b"\n")
    last = parts.pop()
    lines = [part + b"\n" for part in parts]
    if last:
        lines.append(last)
    return lines


RECORDIO_MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", RECORDIO_MAGIC)
_WHOLE, _FIRST, _MIDDLE, _LAST = 0, 1, 2, 3


def _recordio(data: bytes) -> Iterator[Record]:
    """dmlc RecordIO: ``magic``, ``lrec`` (upper 3 bits: continuation flag, lower 29: length),
    payload, zero padding to 4 bytes. A payload that contained the magic number was written in
    parts (flags 1, 2..., 3) cut at it; reading puts the magic number back between the parts."""
    offset, size = 0, len(data)
    while offset < size:
        start = offset
        parts: list[bytes] = []
        while True:
            if size - offset < 8:
                raise RecordError(f"truncated RecordIO header at byte {offset}")
            magic, lrec = struct.unpack_from("<II", data, offset)
            if magic != RECORDIO_MAGIC:
                raise RecordError(f"bad RecordIO magic number at byte {offset}")
            flag, length = lrec >> 29, lrec & ((1 << 29) - 1)
            begin = offset + 8
            if begin + length > size:
                raise RecordError(f"truncated RecordIO record at byte {offset}")
            parts.append(data[begin : begin + length])
            offset = begin + length + (-length % 4)
            expected_first = not parts[:-1]
            if flag == _WHOLE and expected_first:
                break
            if flag == _FIRST and expected_first:
                continue
            if flag == _MIDDLE and not expected_first:
                continue
            if flag == _LAST and not expected_first:
                break
            raise RecordError(f"bad RecordIO continuation flag {flag} at byte {begin - 8}")
        yield Record(data[start:offset], _MAGIC_BYTES.join(parts))


def recordio_frame(payload: bytes) -> bytes:
    """One payload as a RecordIO record (split at the magic number as dmlc's writer does)."""
    parts = payload.split(_MAGIC_BYTES)
    out = bytearray()
    for index, part in enumerate(parts):
        if len(parts) == 1:
            flag = _WHOLE
        elif index == 0:
            flag = _FIRST
        elif index == len(parts) - 1:
            flag = _LAST
        else:
            flag = _MIDDLE
        out += struct.pack("<II", RECORDIO_MAGIC, (flag << 29) | len(part))
        out += part + b"\0" * (-len(part) % 4)
    return bytes(out)


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    table = _CRC32C
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _tfrecord(data: bytes) -> Iterator[Record]:
    """TFRecord: ``uint64 length``, ``uint32 masked_crc32c(length)``, data, ``uint32
    masked_crc32c(data)``. The length's CRC is checked (it catches a misframed file at once);
    the data's CRC is left to the reader in the container (a pure-Python CRC of every byte would
    cost more than the model call)."""
    offset, size = 0, len(data)
    while offset < size:
        if size - offset < 12:
            raise RecordError(f"truncated TFRecord header at byte {offset}")
        header = data[offset : offset + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack_from("<I", data, offset + 8)
        if masked_crc32c(header) != length_crc:
            raise RecordError(f"bad TFRecord length checksum at byte {offset}")
        begin, end = offset + 12, offset + 12 + length + 4
        if end > size:
            raise RecordError(f"truncated TFRecord record at byte {offset}")
        yield Record(data[offset:end], data[begin : end - 4])
        offset = end


def tfrecord_frame(payload: bytes) -> bytes:
    """One payload as a TFRecord record."""
    header = struct.pack("<Q", len(payload))
    return (
        header
        + struct.pack("<I", masked_crc32c(header))
        + payload
        + struct.pack("<I", masked_crc32c(payload))
    )


# --- batching -------------------------------------------------------------------------------


def batch(
    records: Sequence[Record], split_type: SplitType, strategy: BatchStrategy, max_payload_in_mb: int
) -> list[Batch]:
    """Request bodies for one object's records, in order. ``max_payload_in_mb`` 0 means no limit."""
    limit = max_payload_in_mb * MIB if max_payload_in_mb > 0 else None
    if split_type is SplitType.NONE:
        (record,) = records
        if limit is not None and len(record.payload) > limit:
            raise RecordError(
                f"the object is {len(record.payload)} bytes, over MaxPayloadInMB={max_payload_in_mb} "
                "(SplitType None sends the whole object in one request)"
            )
        return [Batch(record.payload, 0, 1)]
    for index, record in enumerate(records):
        if limit is not None and len(record.framed) > limit:
            raise RecordError(
                f"record {index + 1} is {len(record.framed)} bytes, larger than "
                f"MaxPayloadInMB={max_payload_in_mb}; MaxPayloadInMB must be >= the size of a single record"
            )
    if strategy is BatchStrategy.SINGLE_RECORD:
        return [Batch(record.payload, index, 1) for index, record in enumerate(records)]
    batches: list[Batch] = []
    first, size = 0, 0
    for index, record in enumerate(records):
        if limit is not None and index > first and size + len(record.framed) > limit:
            batches.append(_join(records, first, index))
            first, size = index, 0
        size += len(record.framed)
    if len(records) > first:
        batches.append(_join(records, first, len(records)))
    return batches


def _join(records: Sequence[Record], first: int, end: int) -> Batch:
    return Batch(b"".join(record.framed for record in records[first:end]), first, end - first)


def line_batches(data: bytes, max_payload_in_mb: int) -> tuple[int, list[Batch]]:
    """``batch(split(data, Line), Line, MultiRecord, max_payload_in_mb)`` and the record count,
    computed with byte searches instead of one object per line: each body is the longest run of
    whole lines that fits, cut after a newline."""
    size = len(data)
    if not size:
        return 0, []
    count = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    limit = max_payload_in_mb * MIB if max_payload_in_mb > 0 else size
    batches: list[Batch] = []
    start = first = 0
    while start < size:
        if size - start <= limit:
            cut = size
        else:
            cut = data.rfind(b"\n", start, start + limit) + 1
            if cut <= start:  # no whole line fits: the next one is too large
                end = data.find(b"\n", start)
                length = (end + 1 if end >= 0 else size) - start
                raise RecordError(
                    f"record {first + 1} is {length} bytes, larger than MaxPayloadInMB={max_payload_in_mb}; "
                    "MaxPayloadInMB must be >= the size of a single record"
                )
        body = data[start:cut]
        lines = body.count(b"\n") + (0 if body.endswith(b"\n") else 1)
        batches.append(Batch(body, first, lines))
        first += lines
        start = cut
    return count, batches
