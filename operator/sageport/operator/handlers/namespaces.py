"""Namespaces' Pod Security enforce label, which decides whether a Model may run as root
(sageport.operator.pod_security). Listed at start-up, before any Endpoint is reconciled, then every
POLL_SECONDS (one LIST for the cluster; not a kopf watch: next to kopf's own namespace discovery,
one stalled the child watches of new namespaces). When a label changes, the Models and Endpoints in
the namespace are checked again, so relabelling a namespace is all a user does to fix a refusal."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from sageport.operator.handlers.indexes import POD_SECURITY_LEVELS, values
from sageport.operator.handlers.references import reconcile_endpoints, write_model_status
from sageport.operator.kube import KubeError

log = logging.getLogger(__name__)

POLL_SECONDS = 5.0


@kopf.on.startup()
async def start_pod_security_poll(memo: kopf.Memo, **_: Any) -> None:
    try:
        POD_SECURITY_LEVELS.update(await memo.kube.pod_security_levels())
    except KubeError as error:  # no RBAC for namespaces: root Models are then not checked
        log.warning("cannot list namespaces for their Pod Security labels: %s", error)
    memo.tasks.append(asyncio.create_task(poll_pod_security_forever(memo)))


async def poll_pod_security_forever(memo: kopf.Memo) -> None:
    while True:
        await asyncio.sleep(POLL_SECONDS)
        try:
            levels = await memo.kube.pod_security_levels()
        except KubeError as error:
            log.warning("cannot list namespaces for their Pod Security labels: %s", error)
            continue
        changed = sorted(
            ns
            for ns in levels.keys() | POD_SECURITY_LEVELS.keys()
            if levels.get(ns) != POD_SECURITY_LEVELS.get(ns)
        )
        POD_SECURITY_LEVELS.clear()
        POD_SECURITY_LEVELS.update(levels)
        indexes = memo.live.get("indexes")
        if indexes is None:
            continue  # no Endpoint yet: nothing to check again
        for namespace in changed:
            try:
                await _check_again(namespace, memo, indexes)
            except Exception:  # one namespace's failure must not stop the poll
                log.exception(
                    "re-checking namespace %s after its Pod Security label changed failed", namespace
                )


async def _check_again(namespace: str, memo: kopf.Memo, indexes: Any) -> None:
    for key in [key for key in indexes["model_index"] if key[0] == namespace]:
        for body in values(indexes["model_index"], key):
            await write_model_status(body, memo, POD_SECURITY_LEVELS.get(namespace))
    await reconcile_endpoints(
        [key for key in indexes["endpoint_index"] if key[0] == namespace], memo, indexes
    )
