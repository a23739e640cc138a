"""Keep the cluster's InstanceType catalog equal to files: the Helm chart's ConfigMap.

The chart cannot create InstanceType objects itself: Helm maps every object of a release to
an API resource before it creates any, so on a fresh cluster (CRDs installed by the same
release) an InstanceType in the chart fails the whole install. The chart renders the catalog
into a ConfigMap instead, and the operator applies it: objects missing or different are
applied (server-side, forced: the chart's values are the source of truth), objects the catalog
owned (label ``sageport.io/catalog=true``) and no longer lists are deleted. InstanceTypes
without that label are never touched.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sageport.api.v1alpha1 import API_VERSION
from sageport.contract import Plural
from sageport.operator.catalog import CatalogError, catalog_changes, parse_catalog

log = logging.getLogger(__name__)

Manifest = dict[str, Any]

RESYNC_SECONDS = 600.0  # drift repair, like the Endpoints' full re-apply
RETRY_SECONDS = 10.0  # the CRD may not be established yet right after `helm install`


class CatalogApi(Protocol):
    async def apply(self, manifest: Manifest) -> Manifest: ...

    async def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> None: ...

    async def list_cluster_objects(self, api_version: str, plural: str) -> list[Manifest]: ...


@dataclass(frozen=True)
class CatalogSync:
    applied: tuple[str, ...]
    deleted: tuple[str, ...]

    def summary(self) -> str:
        def names(items: tuple[str, ...]) -> str:
            return ", ".join(items[:5]) + (", ..." if len(items) > 5 else "")

        parts = [f"applied {len(self.applied)} ({names(self.applied)})"] if self.applied else []
        parts += [f"deleted {len(self.deleted)} ({names(self.deleted)})"] if self.deleted else []
        return "; ".join(parts) or "up to date"


def read_catalog(path: Path) -> list[tuple[str, str]]:
    """(name, text) of a file, or of a directory's ``*.yaml`` files in name order (a mounted
    ConfigMap: its ``..data`` entries are skipped)."""
    if path.is_dir():
        files = sorted(p for p in path.glob("*.yaml") if not p.name.startswith(".") and p.is_file())
        if not files:  # never read "no files" as "an empty catalog": that would delete it all
            raise CatalogError(f"no *.yaml files in {path}")
    else:
        files = [path]
    try:
        return [(str(p), p.read_text()) for p in files]
    except OSError as error:
        raise CatalogError(f"cannot read the catalog: {error}") from None


async def sync_catalog(api: CatalogApi, path: Path) -> CatalogSync:
    """Apply the catalog at ``path`` once."""
    desired = parse_catalog(read_catalog(path))
    existing = await api.list_cluster_objects(API_VERSION, Plural.INSTANCE_TYPES)
    to_apply, to_delete = catalog_changes(desired, existing)
    await asyncio.gather(*(api.apply(manifest) for manifest in to_apply))
    await asyncio.gather(*(api.delete(API_VERSION, "InstanceType", None, name) for name in to_delete))
    return CatalogSync(tuple(m["metadata"]["name"] for m in to_apply), tuple(to_delete))


async def keep_catalog(api: CatalogApi, path: Path) -> None:
    """Sync now, then every RESYNC_SECONDS; after a failure, retry every RETRY_SECONDS."""
    while True:
        try:
            result = await sync_catalog(api, path)
        except CatalogError as error:
            log.error("instance-type catalog not applied: %s", error)
            await asyncio.sleep(RESYNC_SECONDS)  # the file changes only with a new ConfigMap
            continue
        except Exception as error:  # API errors: not established yet, a passing outage
            log.warning("instance-type catalog not applied yet (retrying): %s", error)
            await asyncio.sleep(RETRY_SECONDS)
            continue
        if result.applied or result.deleted:
            log.info("instance-type catalog: %s", result.summary())
        await asyncio.sleep(RESYNC_SECONDS)
