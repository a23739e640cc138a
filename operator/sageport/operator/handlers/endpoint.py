"""Endpoints: their indexes, their events, and the loops that resync them and explain pending pods.

Event handlers, not kopf's create/update handlers: those write kopf's state annotations on
every object (an extra API write each, and noise in Argo CD diffs). The reconciler tracks the
generation it last reconciled, so a spec change means a full run and anything else (our own
status writes included) nothing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from sageport.contract import API_GROUP, API_VERSION_NAME, Plural
from sageport.operator.handlers.indexes import lookups, values
from sageport.operator.reconcile.lookups import key_of

log = logging.getLogger(__name__)

RESYNC_SECONDS = 60
PENDING_CHECK_SECONDS = 5
PENDING_CHECKS_PER_TICK = 20
# How often the instances of Serial pipelines are looked after (a stage pod that died is back,
# or a new anchor gets its stages, within this plus the pod's start).
PIPELINE_SECONDS = 1.0


@kopf.on.startup()
async def start_endpoint_loops(memo: kopf.Memo, **_: Any) -> None:
    memo.tasks += [
        asyncio.create_task(resync_forever(memo)),
        asyncio.create_task(check_pending_forever(memo)),
        asyncio.create_task(keep_pipelines_forever(memo)),
    ]


@kopf.index(API_GROUP, API_VERSION_NAME, Plural.ENDPOINTS)
async def endpoint_index(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): dict(body)}


@kopf.index(API_GROUP, API_VERSION_NAME, Plural.ENDPOINTS)
async def endpoints_by_config(namespace: str | None, name: str, spec: kopf.Spec, **_: Any) -> dict[Any, Any]:
    return {(namespace, spec.get("endpointConfigName")): name}


@kopf.on.event(API_GROUP, API_VERSION_NAME, Plural.ENDPOINTS)
async def endpoint_event(type: str, body: kopf.Body, memo: kopf.Memo, **indexes: Any) -> None:  # noqa: A002
    # kopf's indexes are live views: keep them for the background loops. Into a dict made at
    # start-up, since kopf hands each object a shallow copy of the memo (attributes set here
    # would stay with this Endpoint's copy).
    memo.live["indexes"] = indexes
    if type == "DELETED":  # children go by ownerReference garbage collection
        memo.reconciler.forget(key_of(body))
        return
    await memo.reconciler.run_if_spec_changed(dict(body), lookups(indexes))


async def check_pending_forever(memo: kopf.Memo) -> None:
    """Every PENDING_CHECK_SECONDS, look at the pods of Endpoints that have waited a while for
    instances, to report why a pod cannot be scheduled. Pods are listed on demand with a
    server-side label selector instead of watched: kopf would watch every pod in the cluster
    and filter by label in Python, which cost a sixth of the time to bring up 500 Endpoints."""
    while True:
        await asyncio.sleep(PENDING_CHECK_SECONDS)
        indexes = memo.live.get("indexes")
        if indexes is None:
            continue
        for key in memo.reconciler.waiting_for_instances()[:PENDING_CHECKS_PER_TICK]:
            for body in values(indexes["endpoint_index"], key):
                try:
                    await memo.reconciler.check_pending_pods(body, lookups(indexes))
                except Exception:  # one Endpoint's failure must not stop the others' checks
                    log.exception("pod check of Endpoint %s/%s failed", *key)


async def keep_pipelines_forever(memo: kopf.Memo) -> None:
    """Every PIPELINE_SECONDS, one pass over the instances of every Serial pipeline (see
    reconcile/pipeline.py). By polling pods with a server-side label selector, one list per
    pipeline fleet, for the same reason check_pending_forever does: no cluster-wide pod watch."""
    while True:
        await asyncio.sleep(PIPELINE_SECONDS)
        keys = memo.reconciler.pipelines()
        results = await asyncio.gather(
            *(memo.reconciler.keep_pipelines(key) for key in keys), return_exceptions=True
        )
        for key, result in zip(keys, results, strict=True):
            if isinstance(result, Exception):  # one Endpoint's failure must not stop the others
                log.error("pipeline pass of Endpoint %s/%s failed: %r", *key, result)


async def resync_forever(memo: kopf.Memo) -> None:
    """Every RESYNC_SECONDS, resync each Endpoint: retry runs that failed for a passing reason
    (API errors) and, now and then, repair drift. Not a kopf timer: those force a finalizer on
    every object, which blocks deletion whenever the operator is down."""
    while True:
        await asyncio.sleep(RESYNC_SECONDS)
        indexes = memo.live.get("indexes")
        if indexes is None:
            continue  # no handler has run yet, so no index was handed to us
        for key in list(indexes["endpoint_index"].keys()):
            for body in values(indexes["endpoint_index"], key):
                try:
                    await memo.reconciler.resync(body, lookups(indexes))
                except Exception:  # one Endpoint's failure must not stop the others' resync
                    log.exception("resync of Endpoint %s/%s failed", *key)
