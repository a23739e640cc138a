"""kopf wiring only, one module per kind of object watched: decorators that hand events to the
reconcilers. Start-up builds what they share (settings, client, reconciler) into the memo and
sets kopf's own settings, watch timeouts included.

References (Endpoint -> EndpointConfig -> Model, InstanceType) are resolved through in-memory
indexes, never by API reads, and any creation order works: when a referenced object appears or
changes, the Endpoints that use it are reconciled again.

Every handler is ``async def``, index handlers included: kopf runs a sync handler in its thread
pool (a thread hop and a shielded task per call), which was most of the operator's CPU at 1000
Endpoints, where each watch event runs every index of its kind.
"""

from __future__ import annotations

from typing import Any

import kopf

from sageport.operator.settings import OperatorSettings, configure_kopf, make_reconciler


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    configure_kopf(settings)  # our names for kopf's state, and watch timeouts
    memo.config = OperatorSettings.from_env()
    memo.reconciler, memo.kube = make_reconciler(memo.config)
    memo.tasks = []  # background loops the other modules' start-up handlers add
    memo.live = {}
    memo.generations = {}
    memo.children_seen = {}


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    for task in memo.tasks:
        task.cancel()
    memo.kube.close()


@kopf.on.probe(id="reconciler")
async def reconciler_alive(memo: kopf.Memo, **_: Any) -> bool:
    return memo.get("reconciler") is not None


# Registered after start-up above, so their start-up handlers run after it (kopf runs them in order).
from . import catalog, children, endpoint, namespaces, references, transform  # noqa: E402

__all__ = ["catalog", "children", "endpoint", "namespaces", "references", "transform"]
