from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sageport.server import codecs
from sageport.server.errors import PayloadError, UnsupportedAcceptError, UnsupportedContentTypeError

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
matrices = hnp.arrays(
    np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=6), elements=finite
)


@given(matrices)
def test_csv_round_trip(matrix: np.ndarray) -> None:
    decoded = codecs.decode(codecs.encode(matrix, codecs.CSV), "text/csv")
    np.testing.assert_array_equal(decoded, matrix)


@given(matrices, st.sampled_from([codecs.JSON, codecs.JSONLINES, codecs.NPY]))
def test_round_trips(matrix: np.ndarray, kind: str) -> None:
    decoded = codecs.decode(codecs.encode(matrix, kind), kind)
    np.testing.assert_array_equal(decoded, matrix)


@pytest.mark.parametrize(
    "body",
    [b"[[1, 2], [3, 4]]", b'{"instances": [[1, 2], [3, 4]]}', b'{"inputs": [[1, 2], [3, 4]]}'],
)
def test_json_shapes_clients_send(body: bytes) -> None:
    np.testing.assert_array_equal(codecs.decode(body, "application/json; charset=utf-8"), [[1, 2], [3, 4]])


def test_a_flat_list_is_one_instance_and_missing_content_type_means_json() -> None:
    assert codecs.decode(b"[1, 2, 3]", None).shape == (1, 3)


def test_a_list_of_strings_is_one_document_per_instance() -> None:
    decoded = codecs.decode(b'{"instances": ["good film", "bad film"]}', "application/json")
    assert decoded.shape == (2,)
    assert decoded.tolist() == ["good film", "bad film"]


def test_csv_with_bare_carriage_returns() -> None:
    assert codecs.decode(b"1,2\r3,4\r", "text/csv").tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_npy_body() -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.arange(6, dtype=np.float32).reshape(2, 3))
    decoded = codecs.decode(buffer.getvalue(), "application/x-npy")
    assert decoded.dtype == np.float32
    assert decoded.shape == (2, 3)


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"", "application/json", "empty request body"),
        (b"{not json", "application/json", "invalid JSON"),
        (b'{"rows": []}', "application/json", '"instances"'),
        (b"[[1, 2], [3]]", "application/json", "rectangular"),
        (b"1,2\n3\n", "text/csv", "CSV row 2 has 1 fields"),
        (b"1,abc\n", "text/csv", "non-numeric"),
        (b"\r\x00", "text/csv", "non-numeric"),
        (b'"1,2\n', "text/csv", "non-numeric"),
        (b"1," + b"9" * 200_000, "text/csv", "invalid CSV: field larger than field limit"),
        (b"[1, 2]\n{oops\n", "application/jsonlines", "line 2"),
        (b"not npy", "application/x-npy", "invalid .npy"),
    ],
)
def test_bad_payloads_say_what_was_wrong(body: bytes, content_type: str, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        codecs.decode(body, content_type)


def test_unsupported_media_types() -> None:
    with pytest.raises(UnsupportedContentTypeError, match="image/png"):
        codecs.decode(b"x", "image/png")
    with pytest.raises(UnsupportedAcceptError, match="image/png"):
        codecs.choose_accept("image/png", codecs.JSON)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, codecs.JSON),
        ("*/*", codecs.JSON),
        ("text/csv", codecs.CSV),
        ("image/png, application/x-jsonlines;q=0.5", codecs.JSONLINES),
        ("application/x-npy", codecs.NPY),
    ],
)
def test_accept_negotiation(header: str | None, expected: str) -> None:
    assert codecs.choose_accept(header, codecs.JSON) == expected


def test_encodings_of_labels_and_probabilities() -> None:
    labels = np.array([0, 2])
    assert codecs.encode(labels, codecs.JSON) == b"[0,2]"
    assert codecs.encode(labels, codecs.CSV) == b"0\n2\n"
    assert codecs.encode(labels, codecs.JSONLINES) == b"0\n2\n"
    assert codecs.encode(np.array([[0.25, 0.75]]), codecs.CSV) == b"0.25,0.75\n"
    assert codecs.encode({"label": np.int64(3)}, codecs.JSON) == b'{"label":3}'
