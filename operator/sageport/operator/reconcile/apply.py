"""Apply: the Endpoint path's only I/O. Children by server-side apply, stale children deleted,
the status patched, Warning events created, all through the :class:`KubeApi` adapter."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from typing import Any

from sageport.contract import API_VERSION, Plural
from sageport.operator.kube import KubeApi, KubeError, Manifest
from sageport.operator.reconcile.lookups import ChildRef, Key
from sageport.operator.render.keda import KEDA_API_VERSION
from sageport.operator.status import Problem

log = logging.getLogger(__name__)

KEDA_MISSING = "KedaNotInstalled"  # the Ready condition's reason when a ScaledObject has no CRD
TESTED_KEDA_VERSION = "v2.20.2"


def child_refs(manifests: Sequence[Manifest]) -> frozenset[ChildRef]:
    return frozenset(ChildRef(m["apiVersion"], m["kind"], m["metadata"]["name"]) for m in manifests)


async def apply_children(
    kube: KubeApi,
    namespace: str,
    manifests: Sequence[Manifest],
    existing: Sequence[ChildRef],
    *,
    prune: bool = True,
) -> Problem | None:
    """Apply every manifest and (with ``prune``) delete the children no longer wanted; a problem
    when the API refused. During an update the serving fleet's children are not pruned."""
    wanted = child_refs(manifests)
    # Children of variants (or autoscalers) no longer in the spec must not linger.
    stale = [c for c in existing if c not in wanted] if prune else []
    calls: list[Awaitable[Any]] = [kube.apply(m) for m in manifests]
    calls += [kube.delete(c.api_version, c.kind, namespace, c.name) for c in stale]
    labels = [f"{m['kind']} {m['metadata']['name']}" for m in manifests] + [
        f"{c.kind} {c.name}" for c in stale
    ]
    results = await asyncio.gather(*calls, return_exceptions=True)
    errors = [
        f"{label}: {r}" for label, r in zip(labels, results, strict=True) if isinstance(r, BaseException)
    ]
    if not errors:
        return None
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, KubeError):
            raise result  # a bug, not the cluster talking: let kopf log and retry it
    missing = sorted(
        {
            m["apiVersion"]
            for m, r in zip(manifests, results, strict=False)
            if isinstance(r, KubeError) and r.status == 404
        }
    )
    if KEDA_API_VERSION in missing:
        return Problem(
            KEDA_MISSING,
            "Serverless variants, target-tracked variants (targetTrackingScalingPolicyConfiguration) and "
            "async variants at minInstanceCount 0 need KEDA (keda.sh/v1alpha1 "
            f"ScaledObject), which is not installed in this cluster: install KEDA (tested: "
            f"{TESTED_KEDA_VERSION}) and the Endpoint proceeds by itself. Or use instanceType and "
            "initialInstanceCount (minInstanceCount 1 or more).",
            terminal=False,
        )
    rejected = [r for r in results if isinstance(r, KubeError) and r.status in (400, 403, 422)]
    return Problem(
        "ApplyRejected" if rejected else "ApplyFailed",
        "Could not apply children: " + "; ".join(errors),
        terminal=bool(rejected),
    )


async def patch_endpoint_status(kube: KubeApi, key: Key, patch: Manifest) -> None:
    await kube.patch_status(API_VERSION, Plural.ENDPOINTS, key[0], key[1], patch)


async def post_event(kube: KubeApi, event: Manifest) -> bool:
    """Create the event; a failure is logged, never fatal (the status says the same)."""
    try:
        await kube.create_event(event)
    except KubeError as error:
        log.warning("event %s not posted: %s", event.get("reason"), error)
        return False
    return True
