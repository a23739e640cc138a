"""Output assembly and DataProcessing (InputFilter, JoinSource, OutputFilter) (pure).

Assembly (sagemaker-semantics.md §1.5): ``AssembleWith=None`` concatenates the responses byte
for byte, in input order; ``Line`` adds a newline after each response unless it already ends in
one (so MultiRecord CSV or JSON Lines responses gain no blank lines).

DataProcessing (§1.8), per record: the InputFilter selects what the model gets; ``JoinSource=Input``
joins the original record with the model's output (CSV: columns appended; a JSON object: the
output under ``SageMakerOutput``; other JSON: ``{"SageMakerInput": ..., "SageMakerOutput": ...}``);
the OutputFilter selects from that. CSV rows are JSON arrays of strings for the filters.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sageport.batch.jsonpath import JsonPath, JsonPathError, parse


class AssembleWith(StrEnum):
    NONE = "None"
    LINE = "Line"


class JoinSource(StrEnum):
    NONE = "None"
    INPUT = "Input"


CSV = "text/csv"
JSON = "application/json"
JSON_LINES = "application/jsonlines"
FILTER_CONTENT_TYPES = (CSV, JSON, JSON_LINES)
JOIN_OUTPUT_KEY = "SageMakerOutput"
JOIN_INPUT_KEY = "SageMakerInput"


class ProcessingError(ValueError):
    """A record could not be filtered or joined; the message says which and why."""


def assemble(responses: Sequence[bytes], assemble_with: AssembleWith) -> bytes:
    if assemble_with is AssembleWith.NONE:
        return b"".join(responses)
    return b"".join(body if body.endswith(b"\n") else body + b"\n" for body in responses)


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


@dataclass(frozen=True)
class DataProcessing:
    """A job's DataProcessing, parsed once. ``active`` is False for the defaults (``$``, None,
    ``$``): records then pass through untouched, byte for byte."""

    input_filter: JsonPath
    output_filter: JsonPath
    join_source: JoinSource
    content_type: str
    accept: str

    @classmethod
    def of(
        cls,
        input_filter: str | None,
        output_filter: str | None,
        join_source: str | None,
        content_type: str | None,
        accept: str | None,
    ) -> DataProcessing:
        try:
            parsed_in, parsed_out = parse(input_filter or "$"), parse(output_filter or "$")
        except JsonPathError as error:
            raise ProcessingError(str(error)) from None
        processing = cls(
            parsed_in,
            parsed_out,
            JoinSource(join_source or JoinSource.NONE),
            _media_type(content_type),
            _media_type(accept) or _media_type(content_type),
        )
        if processing.active:
            for field, value in (("ContentType", processing.content_type), ("Accept", processing.accept)):
                if value not in FILTER_CONTENT_TYPES:
                    raise ProcessingError(
                        f"DataProcessing needs {field} text/csv, application/json or "
                        f"application/jsonlines, not {value or 'unset'!r}"
                    )
            if processing.join_source is JoinSource.INPUT and processing.accept != processing.content_type:
                raise ProcessingError("JoinSource Input needs Accept equal to ContentType")
        return processing

    @property
    def active(self) -> bool:
        return not (self.input_filter.is_root and self.output_filter.is_root and not self.joins)

    @property
    def joins(self) -> bool:
        return self.join_source is JoinSource.INPUT

    @property
    def transforms_output(self) -> bool:
        return self.joins or not self.output_filter.is_root

    def filter_input(self, record: bytes) -> bytes:
        """The part of one record the model gets (the record's own line ending kept)."""
        if self.input_filter.is_root:
            return record
        body, ending = _strip_ending(record)
        value = _decode(body, self.content_type, "input record")
        try:
            selected = self.input_filter.select(value)
        except JsonPathError as error:
            raise ProcessingError(f"InputFilter: {error}") from None
        return _encode(selected, self.content_type) + ending

    def finish(self, record: bytes, output: bytes) -> bytes:
        """One output record from an original input record and the model's output for it
        (without line endings)."""
        result: Any = _decode(_strip_ending(output)[0], self.accept, "model output")
        if self.joins:
            original = _decode(_strip_ending(record)[0], self.content_type, "input record")
            result = join(original, result, self.content_type)
        try:
            selected = self.output_filter.select(result)
        except JsonPathError as error:
            raise ProcessingError(f"OutputFilter: {error}") from None
        return _encode(selected, self.accept)


def join(original: Any, output: Any, content_type: str) -> Any:
    if content_type == CSV:
        return [*original, *(output if isinstance(output, list) else [output])]
    if isinstance(original, dict):
        return {**original, JOIN_OUTPUT_KEY: output}
    return {JOIN_INPUT_KEY: original, JOIN_OUTPUT_KEY: output}


def output_records(response: bytes, count: int) -> list[bytes]:
    """One response split back into the outputs of the ``count`` records it answers (a line
    each); a different number of lines fails the object, as the outputs could not be matched."""
    if count == 1:
        return [_strip_ending(response)[0]]
    lines = response.split(b"\n")
    if lines and lines[-1] in (b"", b"\r"):
        lines.pop()
    if len(lines) != count:
        raise ProcessingError(f"the model answered {count} records with {len(lines)} lines")
    return [line.rstrip(b"\r") for line in lines]


def _strip_ending(record: bytes) -> tuple[bytes, bytes]:
    if record.endswith(b"\r\n"):
        return record[:-2], b"\r\n"
    if record.endswith(b"\n"):
        return record[:-1], b"\n"
    return record, b""


def _decode(data: bytes, content_type: str, what: str) -> Any:
    text = data.decode("utf-8")
    if content_type == CSV:
        rows = list(csv.reader(io.StringIO(text)))
        if len(rows) != 1:
            raise ProcessingError(f"the {what} is not one CSV row: {text[:200]!r}")
        return rows[0]
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ProcessingError(f"the {what} is not JSON ({error}): {text[:200]!r}") from None


def _encode(value: Any, content_type: str) -> bytes:
    if content_type == CSV:
        row = value if isinstance(value, list) else [value]
        out = io.StringIO()
        csv.writer(out, lineterminator="").writerow(
            [json.dumps(cell) if isinstance(cell, dict | list) else cell for cell in row]
        )
        return out.getvalue().encode()
    return json.dumps(value, separators=(",", ":")).encode()
