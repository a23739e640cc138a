"""Dynamic batching over real HTTP: 64 concurrent clients, each must get exactly its own answer."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path

import aiohttp
import pytest

from .conftest import Servers

# Answers each row with [its id, the size of the batch it was predicted in], costing 20 ms a
# call whatever the batch size: the kind of model batching is for.
INFERENCE_PY = """
import time
import numpy as np

class Model:
    def predict(self, rows):
        time.sleep(0.02)
        return np.column_stack([rows[:, 0], np.full(len(rows), len(rows))])

def model_fn(model_dir):
    return Model()
"""


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "inference.py").write_text(textwrap.dedent(INFERENCE_PY))
    return tmp_path


async def _fire(base: str, clients: int, per_client: int) -> list[tuple[int, list[list[float]]]]:
    async def client(index: int, session: aiohttp.ClientSession) -> list[tuple[int, list[list[float]]]]:
        answers = []
        for round_ in range(per_client):
            request_id = index * 1000 + round_
            rows = [[request_id, 0.5]] * (1 + request_id % 3)  # 1 to 3 rows per request
            async with session.post(
                f"{base}/invocations", data=json.dumps(rows), headers={"Content-Type": "application/json"}
            ) as reply:
                assert reply.status == 200, await reply.text()
                answers.append((request_id, json.loads(await reply.read())))
        return answers

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:
        per_client_answers = await asyncio.gather(*(client(i, session) for i in range(clients)))
    return [answer for answers in per_client_answers for answer in answers]


@pytest.mark.parametrize("batching", ["true", "false"])
async def test_64_concurrent_clients_get_their_own_rows(
    start_server: Servers, model_dir: Path, batching: str
) -> None:
    server = start_server(
        "serve",
        "--model-dir",
        str(model_dir),
        env={
            "SAGEPORT_BATCHING": batching,
            "SAGEPORT_BATCH_MAX_SIZE": "64",
            "SAGEPORT_BATCH_MAX_WAIT_MS": "5",
            "SAGEPORT_KSERVE_ROUTES": "false",
        },
    )
    answers = await _fire(server.base, clients=64, per_client=3)
    assert len(answers) == 64 * 3
    batch_sizes = []
    for request_id, rows in answers:
        assert len(rows) == 1 + request_id % 3, "each caller gets as many rows as it sent"
        assert all(row[0] == request_id for row in rows), f"request {request_id} got another's rows: {rows}"
        batch_sizes.append(rows[0][1])
    assert max(batch_sizes) <= 64
    if batching == "true":
        assert max(batch_sizes) > 16, f"requests were not coalesced: {sorted(set(batch_sizes))}"
    else:
        # Without batching each request is predicted alone.
        assert all(
            size == 1 + request_id % 3 for (request_id, _), size in zip(answers, batch_sizes, strict=True)
        )
