"""kopf's start-up index gate after a watch that ended before its first listing (kopf_gate)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import kopf
import pytest
from kopf._cogs.aiokits import aiotoggles
from kopf._cogs.clients import watching
from kopf._cogs.structs.references import Resource
from kopf._core.reactor import queueing

from sageport.operator import kopf_gate

SCALED_OBJECTS = Resource("keda.sh", "v1alpha1", "scaledobjects", namespaced=True)


async def _never_lists(**_: Any) -> AsyncIterator[Any]:
    await asyncio.Event().wait()  # the namespace goes before the list call answers
    yield watching.Bookmark.LISTED


async def _processor(**_: Any) -> None:
    raise AssertionError("no event reaches a watch that never listed")


async def _gate_after_a_watch_stopped_before_listing() -> aiotoggles.ToggleSet:
    gate = aiotoggles.ToggleSet(all)
    toggle = await gate.make_toggle(name=f"{SCALED_OBJECTS}@gone")
    watch = asyncio.create_task(
        queueing.watcher(
            namespace="gone",
            settings=kopf.OperatorSettings(),
            resource=SCALED_OBJECTS,
            processor=_processor,
            operator_indexed=gate,
            resource_indexed=toggle,
        )
    )
    await asyncio.sleep(0.05)
    watch.cancel()  # kopf's orchestrator stops the watches of a deleted namespace this way
    with contextlib.suppress(asyncio.CancelledError):
        await watch
    return gate


@pytest.fixture
def kopf_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    # Whatever a test installs is undone afterwards.
    monkeypatch.setattr(queueing, "watcher", queueing.watcher)
    monkeypatch.setattr(queueing, "worker", queueing.worker)
    monkeypatch.setattr(watching, "infinite_watch", _never_lists)


@pytest.mark.usefixtures("kopf_untouched")
async def test_kopf_alone_keeps_the_gate_closed_for_good() -> None:
    # The defect the shim is for. If a kopf upgrade fixes it, this fails: drop kopf_gate then.
    assert (await _gate_after_a_watch_stopped_before_listing()).is_off()


@pytest.mark.usefixtures("kopf_untouched")
async def test_with_the_shim_a_stopped_watch_releases_the_gate() -> None:
    kopf_gate.install()
    kopf_gate.install()  # idempotent: wrapped once
    assert (await _gate_after_a_watch_stopped_before_listing()).is_on()


@pytest.mark.usefixtures("kopf_untouched")
def test_the_shim_refuses_a_kopf_without_the_gate_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    async def worker(*, key: object) -> None: ...

    monkeypatch.setattr(queueing, "worker", worker)
    with pytest.raises(RuntimeError, match=r"queueing\.worker has no operator_indexed, resource_indexed"):
        kopf_gate.install()
