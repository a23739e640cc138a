"""SageMaker's platform side of the multi-model container contract, for a container that is not
sageport's model server (AWS's Multi Model Server, any image with the ``multi-models`` capability).

Such a container loads nothing by itself: on the first call of a TargetModel on an instance,
SageMaker downloads the artifact to the instance's disk, asks the container to load it
(``POST /models`` with ``{"model_name", "url"}``, LoadModel) and then calls
``POST /models/<name>/invoke``. The router does the same here: one download and one LoadModel per
model however many calls arrive meanwhile, into ``<root>/<name>/model`` (the pod's shared
``/opt/ml/models``), and loads again when the container has lost the model (it answers 404, as
after a restart). The container decides about memory: its 507 is passed on.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

from sageport.contract import MULTI_MODEL_PATH, TARGET_MODEL_MISSING_ERROR, multi_model_id
from sageport.storage.fetch import ArtifactMissingError

log = logging.getLogger("sageport.router.loader")

_COMPLETE = ".complete"  # written once an artifact is unpacked: a half download is never loaded

# (status, body) of the container's answer to a LoadModel call.
LoadCall = Callable[[str, bytes], Awaitable[tuple[int, bytes]]]
# (url, destination): unpack the artifact there (blocking; sageport.storage.fetch).
Fetch = Callable[[str, Path], object]


@dataclass(frozen=True)
class LoadFailure:
    """Why a model is not loaded: the answer the router gives (SageMaker's error shapes)."""

    status: int
    body: bytes
    from_container: bool  # the container's own answer (the gateway names it in a ModelError)


def target_missing(url: str) -> LoadFailure:
    """SageMaker's ValidationError text for a TargetModel with no object under the prefix."""
    bucket, _, key = url.removeprefix("s3://").partition("/")
    message = (
        f"Failed to download model data(bucket: {bucket}, key: {key}). Please ensure that there is "
        "an object located at the URL and that the role passed to CreateModel has permissions to "
        "download the model."
    )
    body = json.dumps({"code": 400, "type": TARGET_MODEL_MISSING_ERROR, "message": message}).encode()
    return LoadFailure(400, body, from_container=False)


class ModelLoader:
    def __init__(
        self, prefix: str, root: Path, fetch: Fetch, load: LoadCall, executor: Executor | None
    ) -> None:
        self.prefix = prefix.rstrip("/") + "/"
        self.root = root
        self._fetch = fetch
        self._load = load
        self._executor = executor
        self._loaded: set[str] = set()
        self._loading: dict[str, asyncio.Future[LoadFailure | None]] = {}

    def url(self, target: str) -> str:
        return self.prefix + target

    def forget(self, name: str) -> None:
        """The container answered that it does not have the model: load it again on the next call."""
        self._loaded.discard(name)

    async def ensure(self, name: str, target: str) -> LoadFailure | None:
        """Make sure the container has TargetModel ``target`` loaded as ``name``; None when it has."""
        if name != multi_model_id(target):
            body = json.dumps({"code": 400, "type": "ValidationError", "message": "model name mismatch"})
            return LoadFailure(400, body.encode(), from_container=False)
        if name in self._loaded:
            return None
        pending = self._loading.get(name)
        if pending is None:
            pending = asyncio.ensure_future(self._load_once(name, target))
            self._loading[name] = pending
            pending.add_done_callback(lambda _: self._loading.pop(name, None))
        return await asyncio.shield(pending)

    async def _load_once(self, name: str, target: str) -> LoadFailure | None:
        model_dir = self.root / name / "model"
        complete = self.root / name / _COMPLETE
        if not complete.exists():
            url = self.url(target)
            try:
                await asyncio.get_running_loop().run_in_executor(self._executor, self._fetch, url, model_dir)
            except ArtifactMissingError:
                return target_missing(url)
            except Exception as error:  # a broken archive, S3 refusing: the model cannot load
                log.warning("fetching %s failed: %s", url, error)
                text = json.dumps({"code": 500, "type": "ModelError", "message": f"{target}: {error}"})
                return LoadFailure(500, text.encode(), from_container=False)
            complete.touch()
        request = json.dumps({"model_name": name, "url": str(model_dir)}).encode()
        status, answer = await self._load(MULTI_MODEL_PATH, request)
        if status in (200, 409):  # 409: the container had it already (its own state survived ours)
            self._loaded.add(name)
            log.info("loaded %s as %s", target, name)
            return None
        log.warning("the container refused to load %s: %d %s", target, status, answer[:200])
        return LoadFailure(status, answer, from_container=True)
