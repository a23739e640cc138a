"""Stage 1 of examples/serial-pipeline: CSV rows of iris measurements in millimetres (a header
line allowed) in, CSV rows in centimetres out, for the sklearn stage. Raw text both ways."""

from __future__ import annotations


def model_fn(model_dir):
    return None


def input_fn(body, content_type):
    if content_type.split(";")[0].strip() != "text/csv":
        raise ValueError(f"expected text/csv, got {content_type}")
    text = body.decode() if isinstance(body, bytes) else body
    return [line.split(",") for line in text.splitlines() if line.strip()]


def predict_fn(rows, model):
    if rows and not _is_number(rows[0][0]):
        rows = rows[1:]  # a header line
    return [[float(value) / 10 for value in row] for row in rows]


def output_fn(rows, accept):
    return "".join(",".join(f"{value:g}" for value in row) + "\n" for row in rows), "text/csv"


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True
