"""The ASGI app in-process: where each piece of work runs, with batching on."""

from __future__ import annotations

import asyncio
import json
import textwrap
import threading
from pathlib import Path
from typing import Any

from sageport.server.app import build_app
from sageport.server.config import load_config

INFERENCE_PY = """
import json
import threading
import numpy as np

seen = {}

def model_fn(model_dir):
    return None

def input_fn(body, content_type):
    seen["input_fn"] = threading.current_thread().name
    return np.asarray(json.loads(body), dtype=float)

def predict_fn(rows, model):
    seen["predict_fn"] = threading.current_thread().name
    return rows.sum(axis=1)

def output_fn(prediction, accept):
    seen["output_fn"] = threading.current_thread().name
    return json.dumps({"sums": prediction.tolist(), "threads": dict(seen)})
"""


async def _post(app: Any, path: str, body: bytes) -> tuple[int, bytes]:
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": [(b"content-type", b"application/json")],
    }
    await app(scope, receive, send)
    return messages[0]["status"], messages[1]["body"]


async def test_user_hooks_never_run_on_the_event_loop_even_with_batching(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "inference.py").write_text(textwrap.dedent(INFERENCE_PY))
    config = load_config(
        ["--model-dir", str(tmp_path)],
        {"SAGEPORT_BATCHING": "true", "SAGEPORT_KSERVE_ROUTES": "false", "SAGEPORT_BATCH_MAX_WAIT_MS": "1"},
    )
    app = build_app(config)
    await app.state.startup()
    for _ in range(200):
        if app.state.handler is not None:
            break
        await asyncio.sleep(0.05)
    loop_thread = threading.current_thread().name
    try:
        answers = await asyncio.gather(
            *(_post(app, "/invocations", json.dumps([[i, 1.0]]).encode()) for i in range(8))
        )
    finally:
        await app.state.shutdown()
    for index, (status, body) in enumerate(answers):
        assert status == 200, body
        reply = json.loads(body)
        assert reply["sums"] == [index + 1.0]
        assert loop_thread not in reply["threads"].values(), reply["threads"]
    assert app.state.batchers["model"].batches_run < 8, "the eight requests were coalesced"


async def _serve(model_dir: Path) -> Any:
    app = build_app(load_config(["--model-dir", str(model_dir)], {"SAGEPORT_KSERVE_ROUTES": "false"}))
    await app.state.startup()
    for _ in range(400):
        if app.state.handler is not None or app.state.load_error is not None:
            break
        await asyncio.sleep(0.05)
    assert app.state.handler is not None, app.state.load_error
    return app


async def _call(app: Any, body: bytes, content_type: str, accept: str) -> tuple[int, bytes, str]:
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    headers = [(b"content-type", content_type.encode()), (b"accept", accept.encode())]
    await app({"type": "http", "method": "POST", "path": "/invocations", "headers": headers}, receive, send)
    response_headers = dict(messages[0]["headers"])
    return messages[0]["status"], messages[1]["body"], response_headers[b"content-type"].decode()


CSV_ROWS = b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n"


async def test_xgboost_csv_and_json_round_trips(xgboost_dir: Path) -> None:
    app = await _serve(xgboost_dir)
    try:
        status, body, content_type = await _call(app, CSV_ROWS, "text/csv", "text/csv")
        assert (status, content_type) == (200, "text/csv")
        probabilities = [[float(v) for v in line.split(",")] for line in body.decode().splitlines()]
        assert [row.index(max(row)) for row in probabilities] == [0, 2]
        status, body, _ = await _call(app, b"[[5.1,3.5,1.4,0.2]]", "application/json", "application/json")
        assert status == 200
        assert len(json.loads(body)[0]) == 3
    finally:
        await app.state.shutdown()


async def test_onnx_csv_and_json_round_trips(onnx_dir: Path) -> None:
    app = await _serve(onnx_dir)
    try:
        status, body, _ = await _call(app, CSV_ROWS, "text/csv", "text/csv")
        assert (status, body) == (200, b"0\n2\n")
        status, body, _ = await _call(app, b'{"instances": [[6.7,3.0,5.2,2.3]]}', "application/json", "*/*")
        assert (status, json.loads(body)) == (200, [2])
    finally:
        await app.state.shutdown()
