"""One input object end to end, without I/O: decompress, split, filter, batch; then, from the
model's responses in batch order, the whole output object (pure)."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from sageport.batch.assemble import ProcessingError, assemble, output_records
from sageport.batch.params import Parameters
from sageport.batch.records import (
    Batch,
    BatchStrategy,
    Record,
    RecordError,
    SplitType,
    batch,
    line_batches,
    split,
)


@dataclass(frozen=True)
class Prepared:
    """An object's records as read (for joins; left empty when nothing reads them) and the
    request bodies to send, in order."""

    records: list[Record]
    batches: list[Batch]
    count: int  # how many records the object has


def prepare(data: bytes, params: Parameters) -> Prepared:
    if params.gzip:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise RecordError(f"CompressionType Gzip, but the object is not gzip data: {error}") from None
    if (
        params.split_type is SplitType.LINE
        and params.batch_strategy is BatchStrategy.MULTI_RECORD
        and not params.processing.active
    ):
        # The common case (CSV or JSON Lines, MultiRecord, no filters): the bodies are slices of
        # the object cut at newlines, found without making one bytes object per line.
        count, batches = line_batches(data, params.max_payload_in_mb)
        return Prepared([], batches, count)
    return _prepare_records(data, params)


def _prepare_records(data: bytes, params: Parameters) -> Prepared:

    records = split(data, params.split_type)
    sent = records
    processing = params.processing
    if not processing.input_filter.is_root:
        if params.split_type not in (SplitType.NONE, SplitType.LINE):
            raise ProcessingError("InputFilter needs SplitType Line or None")
        sent = [
            Record(filtered, filtered) for filtered in (processing.filter_input(r.payload) for r in records)
        ]
    batches = batch(sent, params.split_type, params.batch_strategy, params.max_payload_in_mb)
    return Prepared(records, batches, len(records))


def finish(prepared: Prepared, responses: Sequence[bytes], params: Parameters) -> bytes:
    """The output object from the responses to ``prepared.batches`` (same order)."""
    if len(responses) != len(prepared.batches):
        raise ValueError("one response per batch is needed")
    processing = params.processing
    if not processing.transforms_output:
        return assemble(responses, params.assemble_with)
    outputs: list[bytes] = []
    for sent, response in zip(prepared.batches, responses, strict=True):
        for offset, output in enumerate(output_records(response, sent.count)):
            original = prepared.records[sent.first + offset].payload
            outputs.append(processing.finish(original, output))
    return assemble(outputs, params.assemble_with)
