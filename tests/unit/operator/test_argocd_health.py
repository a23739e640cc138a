"""The Argo CD health check, run in a real Lua interpreter against operator-shaped objects."""

from __future__ import annotations

from typing import Any

import lupa
import pytest

from tests.support.manifests import REPO

SCRIPT = (REPO / "charts" / "sageport" / "argocd" / "health.lua").read_text()


def _health(obj: dict[str, Any]) -> dict[str, str]:
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(SCRIPT)
    return {"status": result["status"], "message": result["message"]}


def _endpoint(generation: int, observed: int | None, ready: str | None, reason: str = "") -> dict[str, Any]:
    obj: dict[str, Any] = {"kind": "Endpoint", "metadata": {"name": "e", "generation": generation}}
    if observed is not None:
        conditions = []
        if ready is not None:
            conditions = [
                {
                    "type": "Ready",
                    "status": ready,
                    "reason": reason,
                    "message": "m",
                    "observedGeneration": observed,
                }
            ]
        obj["status"] = {"observedGeneration": observed, "conditions": conditions}
    return obj


@pytest.mark.parametrize(
    ("obj", "status"),
    [
        (_endpoint(1, None, None), "Progressing"),
        (_endpoint(2, 1, "True"), "Progressing"),  # a newer spec not yet reconciled
        (_endpoint(1, 1, "True"), "Healthy"),
        (_endpoint(1, 1, "Unknown", "InstancesStarting"), "Progressing"),
        (_endpoint(1, 1, "False", "Unschedulable"), "Degraded"),
        (_endpoint(1, 1, None), "Progressing"),
    ],
)
def test_health_follows_ready_and_generation(obj: dict[str, Any], status: str) -> None:
    assert _health(obj)["status"] == status


def test_degraded_message_names_the_reason() -> None:
    assert _health(_endpoint(1, 1, "False", "InstanceTypeNotFound"))["message"] == "InstanceTypeNotFound: m"


def test_transform_job_uses_succeeded() -> None:
    job = {
        "kind": "TransformJob",
        "metadata": {"generation": 1},
        "status": {
            "observedGeneration": 1,
            "conditions": [{"type": "Succeeded", "status": "True", "message": "done"}],
        },
    }
    assert _health(job) == {"status": "Healthy", "message": "done"}
