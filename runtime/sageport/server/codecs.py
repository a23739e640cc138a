"""Request decoding and response encoding by media type (pure: bytes in, bytes out).

Supported both ways: application/json, text/csv, application/jsonlines (also
application/x-jsonlines), application/x-npy. JSON input may be a bare array or a
``{"instances": [...]}`` / ``{"inputs": [...]}`` object, as SageMaker's framework containers
and KServe V1 clients send.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import numpy as np

from sageport.server.errors import PayloadError, UnsupportedAcceptError, UnsupportedContentTypeError

JSON = "application/json"
CSV = "text/csv"
JSONLINES = "application/jsonlines"
NPY = "application/x-npy"

_ALIASES = {
    "application/x-jsonlines": JSONLINES,
    "application/jsonl": JSONLINES,
    "application/x-ndjson": JSONLINES,
    "application/ndjson": JSONLINES,
    "text/x-csv": CSV,
    "application/csv": CSV,
    "application/npy": NPY,
}
SUPPORTED = (JSON, CSV, JSONLINES, NPY)


def media_type(header: str | None) -> str | None:
    """``"text/csv; charset=utf-8"`` -> ``"text/csv"``; None for a missing or empty header."""
    if not header:
        return None
    base = header.split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base) or None


def choose_accept(accept_header: str | None, default: str) -> str:
    """Pick the first supported media type from an Accept header (``*/*`` means the default)."""
    if not accept_header:
        return default
    for candidate in accept_header.split(","):
        kind = media_type(candidate)
        if kind in ("*/*", "application/*", None):
            return default
        if kind in SUPPORTED:
            return kind
    raise UnsupportedAcceptError(
        f"cannot produce any of Accept: {accept_header!r}; supported: {', '.join(SUPPORTED)}"
    )


def _rows_from_json(value: Any) -> Any:
    if isinstance(value, dict):
        for key in ("instances", "inputs", "features"):
            if key in value:
                return value[key]
        raise PayloadError('JSON object must hold "instances" or "inputs" (or send a bare array)')
    return value


def _to_array(rows: Any, what: str) -> np.ndarray:
    try:
        array = np.asarray(rows)
    except ValueError as exc:  # ragged rows
        raise PayloadError(f"{what}: rows are not rectangular ({exc})") from exc
    if array.dtype == object:
        raise PayloadError(f"{what}: rows are not rectangular or not numeric")
    if array.ndim == 0:
        raise PayloadError(f"{what}: expected an array of rows, got a scalar")
    if array.ndim == 1 and array.dtype.kind not in "US":
        array = array.reshape(1, -1)  # one instance given as a flat list of features
    # A flat list of strings stays 1-D: one document per instance, as text pipelines take them.
    return array


def decode(body: bytes, content_type: str | None) -> np.ndarray:
    """Turn a request body into a 2-D (or higher) array of instances."""
    kind = media_type(content_type) or JSON
    if not body:
        raise PayloadError("empty request body")
    if kind == JSON:
        try:
            value = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise PayloadError(f"invalid JSON: {exc}") from exc
        return _to_array(_rows_from_json(value), "JSON")
    if kind == CSV:
        return _decode_csv(body)
    if kind == JSONLINES:
        rows = []
        for number, line in enumerate(body.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(_rows_from_json(json.loads(line)))
            except (ValueError, UnicodeDecodeError) as exc:
                raise PayloadError(f"invalid JSON on line {number}: {exc}") from exc
        if not rows:
            raise PayloadError("no JSON lines in the body")
        return _to_array(rows, "JSON lines")
    if kind == NPY:
        try:
            array = np.load(io.BytesIO(body), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise PayloadError(f"invalid .npy payload: {exc}") from exc
        return _to_array(array, "npy")
    raise UnsupportedContentTypeError(
        f"unsupported Content-Type {content_type!r}; supported: {', '.join(SUPPORTED)}"
    )


def _decode_csv(body: bytes) -> np.ndarray:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"CSV is not UTF-8: {exc}") from exc
    try:
        # newline="": the csv module does its own line splitting (bare \r, quoted newlines).
        rows = [row for row in csv.reader(io.StringIO(text, newline="")) if row]
    except csv.Error as exc:
        raise PayloadError(f"invalid CSV: {exc}") from exc
    if not rows:
        raise PayloadError("no CSV rows in the body")
    width = len(rows[0])
    for number, row in enumerate(rows, start=1):
        if len(row) != width:
            raise PayloadError(f"CSV row {number} has {len(row)} fields, row 1 has {width}")
    try:
        return np.array(rows, dtype=np.float64)
    except ValueError as exc:
        raise PayloadError(f"CSV holds a non-numeric field: {exc}") from exc


def to_plain(value: Any) -> Any:
    """Something json.dumps accepts, from numpy arrays, numpy scalars and containers of them."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(key): to_plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(item) for item in value]
    return value


def _csv_field(value: Any) -> str:
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def encode(prediction: Any, accept: str) -> bytes:
    """Serialise a prediction as ``accept`` (already resolved by :func:`choose_accept`)."""
    if accept == JSON:
        return json.dumps(to_plain(prediction), separators=(",", ":")).encode()
    if accept == NPY:
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(prediction), allow_pickle=False)
        return buffer.getvalue()
    rows = to_plain(prediction)
    if not isinstance(rows, list):
        rows = [rows]
    if accept == JSONLINES:
        return b"".join(json.dumps(row, separators=(",", ":")).encode() + b"\n" for row in rows)
    if accept == CSV:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        for row in rows:
            writer.writerow([_csv_field(v) for v in row] if isinstance(row, list) else [_csv_field(row)])
        return out.getvalue().encode()
    raise UnsupportedAcceptError(f"cannot produce {accept!r}")
