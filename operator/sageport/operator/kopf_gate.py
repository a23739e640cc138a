"""Keep kopf's start-up index gate from closing for good when a watch ends before it lists.

kopf holds every handler until each indexed kind has been listed once (one "not indexed yet"
toggle per watch, and one per object seen before that). kopf 1.45 drops a watch's toggle only
when its listing completes: a watch stopped before that (its namespace deleted just as it
started, or a CRD such as KEDA's installed while namespaces come and go) leaves the toggle
behind, and from then on the handlers of every namespace that appears later wait forever (their
Endpoints stay Creating with their pods running). This wraps kopf's watcher and worker so that
whatever ends them also drops the toggle they were given; dropping is idempotent in kopf.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from kopf._core.reactor import queueing

_WRAPPED = "_sageport_releases_index_gate"
_GATE_PARAMETERS = ("operator_indexed", "resource_indexed")


def _releasing(run: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    @functools.wraps(run)
    async def releasing(**kwargs: Any) -> None:
        try:
            await run(**kwargs)
        finally:
            gate, toggle = kwargs.get("operator_indexed"), kwargs.get("resource_indexed")
            if gate is not None and toggle is not None:
                await gate.drop_toggle(toggle)

    setattr(releasing, _WRAPPED, True)
    return releasing


def install() -> None:
    """Wrap kopf's watcher and worker (once). Raises if kopf no longer has the parameters this
    relies on, so an upgrade that changes them fails at start, not silently."""
    for name in ("watcher", "worker"):
        run = getattr(queueing, name)
        if getattr(run, _WRAPPED, False):
            continue
        missing = [p for p in _GATE_PARAMETERS if p not in inspect.signature(run).parameters]
        if missing:
            raise RuntimeError(f"kopf's queueing.{name} has no {', '.join(missing)}: review kopf_gate")
        setattr(queueing, name, _releasing(run))
