"""The SageMaker container contract end to end: a real server process, real HTTP, a real model."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .conftest import Server, Servers

CSV_ROWS = b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n5.9,3.0,4.2,1.5\n"


@pytest.fixture(scope="module")
def server(start_module_server: Servers, sklearn_dir: Path) -> Server:
    # "serve" as SageMaker passes it; the port comes from SAGEMAKER_BIND_TO_PORT, the model from --model-dir.
    started = start_module_server("serve", "--model-dir", str(sklearn_dir))
    # The KServe routes come up in the background after the model; wait so the tests see them.
    started.wait_until(lambda r: r.status == 200, path="/v2/health/ready")
    return started


def _expected(model: Any, rows: bytes) -> list[int]:
    features = np.loadtxt(io.BytesIO(rows), delimiter=",", ndmin=2)
    return [int(v) for v in model.predict(features)]


def test_csv_in_csv_out(server: Server, sklearn_model: Any) -> None:
    reply = server.request(
        "POST", "/invocations", CSV_ROWS, {"Content-Type": "text/csv", "Accept": "text/csv"}
    )
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/csv"
    assert [int(line) for line in reply.body.decode().split()] == _expected(sklearn_model, CSV_ROWS)


def test_json_in_json_out(server: Server, sklearn_model: Any) -> None:
    body = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}).encode()
    reply = server.request("POST", "/invocations", body, {"Content-Type": "application/json"})
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == _expected(sklearn_model, CSV_ROWS)[:2]


def test_jsonlines_and_npy(server: Server, sklearn_model: Any) -> None:
    lines = b"[5.1,3.5,1.4,0.2]\n[6.7,3.0,5.2,2.3]\n"
    reply = server.request(
        "POST",
        "/invocations",
        lines,
        {"Content-Type": "application/jsonlines", "Accept": "application/jsonlines"},
    )
    assert reply.body == b"0\n2\n"

    buffer = io.BytesIO()
    np.save(buffer, np.loadtxt(io.BytesIO(CSV_ROWS), delimiter=","))
    reply = server.request(
        "POST",
        "/invocations",
        buffer.getvalue(),
        {"Content-Type": "application/x-npy", "Accept": "application/x-npy"},
    )
    assert reply.status == 200
    assert np.load(io.BytesIO(reply.body)).tolist() == _expected(sklearn_model, CSV_ROWS)


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        (b"1,2\n3\n", {"Content-Type": "text/csv"}, 400, "CSV row 2 has 1 fields"),
        (b"{oops", {"Content-Type": "application/json"}, 400, "invalid JSON"),
        (b"x", {"Content-Type": "image/png"}, 415, "image/png"),
        (CSV_ROWS, {"Content-Type": "text/csv", "Accept": "image/png"}, 406, "image/png"),
        (b"1,2\n", {"Content-Type": "text/csv"}, 500, "features"),  # the model itself raises
    ],
)
def test_errors_carry_status_and_message(
    server: Server, body: bytes, headers: dict[str, str], status: int, message: str
) -> None:
    reply = server.request("POST", "/invocations", body, headers)
    assert reply.status == status
    assert message in reply.json()["message"]


def test_get_on_invocations_is_rejected(server: Server) -> None:
    assert server.request("GET", "/invocations").status == 405


def test_kserve_v1_and_v2_routes_serve_the_same_model(server: Server, sklearn_model: Any) -> None:
    expected = _expected(sklearn_model, CSV_ROWS)
    rows = np.loadtxt(io.BytesIO(CSV_ROWS), delimiter=",").tolist()
    v1 = server.request(
        "POST",
        "/v1/models/model:predict",
        json.dumps({"instances": rows}).encode(),
        {"Content-Type": "application/json"},
    )
    assert v1.status == 200, v1.body
    assert v1.json() == {"predictions": expected}

    v2_request = {
        "inputs": [
            {"name": "x", "shape": [3, 4], "datatype": "FP64", "data": [v for row in rows for v in row]}
        ]
    }
    v2 = server.request(
        "POST",
        "/v2/models/model/infer",
        json.dumps(v2_request).encode(),
        {"Content-Type": "application/json"},
    )
    assert v2.status == 200, v2.body
    output = v2.json()["outputs"][0]
    assert (output["shape"], output["data"]) == ([3], expected)

    # curl's default Content-Type (form-urlencoded) reaches the model as raw bytes; still JSON.
    untyped = server.request(
        "POST",
        "/v1/models/model:predict",
        json.dumps({"instances": rows}).encode(),
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert untyped.json() == {"predictions": expected}

    assert server.request("GET", "/v2/models/model/ready").json()["ready"] is True
    assert server.request("GET", "/v1/models/absent").status == 404


@pytest.mark.parametrize(
    "data",
    [[1.0, 2.0], [[1.0], 2.0, 3.0, 4.0], [{"a": 1}, 2.0, 3.0, 4.0]],
    ids=["size", "ragged", "type"],
)
def test_kserve_v2_data_that_does_not_fit_its_shape_is_400(server: Server, data: list[Any]) -> None:
    request = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": data}]}
    reply = server.request(
        "POST", "/v2/models/model/infer", json.dumps(request).encode(), {"Content-Type": "application/json"}
    )
    assert reply.status == 400, reply.body
    assert "input 'x'" in reply.json()["error"]


def test_execution_parameters_for_batch_transform(server: Server) -> None:
    assert server.request("GET", "/execution-parameters").json()["BatchStrategy"] == "MULTI_RECORD"
