"""Malformed and odd payloads, content types and Accept headers thrown at a running model server.

The model is the identity (``predict_fn`` returns what ``input_fn`` decoded), so it cannot fail
on its own: every 5xx would be the server's (decoding, encoding, negotiation). Every answer must
be a success or a 4xx that says what was wrong, and the server must stay up.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import Server, Servers

IDENTITY = """
def model_fn(model_dir):
    return None


def predict_fn(data, model):
    return data
"""

_CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "text/csv",
        "text/csv; header=present",
        "application/jsonlines",
        "application/x-npy",
        "application/octet-stream",
        "text/plain",
        "image/png",
        "",
        "application/",
        ";;;",
    ]
)
_ACCEPTS = st.sampled_from(
    [
        None,
        "*/*",
        "application/json",
        "text/csv",
        "application/jsonlines",
        "application/x-npy",
        "image/png",
        "text/csv;q=0.5, application/json",
        "application/*",
        "",
        ",",
        "text/csv;q=abc",
    ]
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)
_CELL = st.one_of(
    st.floats(allow_nan=True).map(repr), st.integers().map(str), st.text(max_size=6), st.just("")
)
_CSV = st.lists(st.lists(_CELL, min_size=0, max_size=5), max_size=5).map(
    lambda rows: "\n".join(",".join(row) for row in rows).encode("utf-8", "surrogatepass")
)


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


_NPY = st.one_of(
    st.lists(st.floats(allow_nan=True), max_size=12).map(lambda values: _npy(np.asarray(values))),
    st.lists(st.integers(-(2**31), 2**31 - 1), max_size=12).map(
        lambda values: _npy(np.asarray(values, dtype=np.int64).reshape(-1, 1))
    ),
    st.just(_npy(np.asarray([{"a": 1}, None], dtype=object))),  # needs pickle: must be refused
    st.binary(max_size=64).map(lambda tail: b"\x93NUMPY" + tail),
)
_BODIES = st.one_of(
    st.binary(max_size=512),
    _JSON.map(lambda value: json.dumps(value).encode()),
    _JSON.map(lambda value: "\n".join(json.dumps(value) for _ in range(2)).encode()),
    _CSV,
    _NPY,
)


@pytest.fixture(scope="module")
def identity_server(start_module_server: Servers, tmp_path_factory: pytest.TempPathFactory) -> Server:
    model_dir: Path = tmp_path_factory.mktemp("identity")
    (model_dir / "code").mkdir()
    (model_dir / "code" / "inference.py").write_text(IDENTITY)
    return start_module_server(
        "serve", "--model-dir", str(model_dir), env={"SAGEPORT_KSERVE_ROUTES": "false"}
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content_type=_CONTENT_TYPES, accept=_ACCEPTS, body=_BODIES)
def test_odd_payloads_get_an_answer_or_a_4xx_never_a_server_error(
    identity_server: Server, content_type: str, accept: str | None, body: bytes
) -> None:
    headers = {"Content-Type": content_type}
    if accept is not None:
        headers["Accept"] = accept
    reply = identity_server.request("POST", "/invocations", body, headers)
    assert reply.status in (200, 400, 406, 413, 415), (reply.status, reply.body[:300])
    if reply.status != 200:
        assert reply.json()["message"], reply.body[:300]
    assert identity_server.process.poll() is None
