"""The Helm chart's InstanceType catalog (a mounted ConfigMap), kept applied in the background."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import kopf

from sageport.operator.reconcile.catalog import keep_catalog


@kopf.on.startup()
async def start_catalog_sync(memo: kopf.Memo, **_: Any) -> None:
    if memo.config.catalog_path:
        memo.tasks.append(asyncio.create_task(keep_catalog(memo.kube, Path(memo.config.catalog_path))))
