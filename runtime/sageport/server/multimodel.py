"""Multi-model mode: models loaded on request, kept within a memory budget, least recently used first out.

Sizes are measured when each model loads (see :mod:`sageport.server.memory`), not declared
and not counted: ten small models may stay where one large one would not fit. A model that
does not fit even in an empty budget is refused with 507, as SageMaker's container contract
asks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sageport.server import memory
from sageport.server.errors import InsufficientMemoryError, ModelAlreadyLoadedError, ModelNotLoadedError

log = logging.getLogger(__name__)


@dataclass
class Resident:
    name: str
    url: str
    handler: Any
    memory_bytes: int


def plan_evictions(lru_first: Sequence[tuple[str, int]], budget: int, incoming: int) -> list[str]:
    """Names to unload, oldest first, so that ``incoming`` more bytes fit in ``budget`` (pure).

    Walks the least recently used models until enough memory is free, then keeps any of
    those whose unloading turned out not to be needed (newest first): a small idle model is
    not thrown out just because it sat before a large one in the LRU order.
    Raises InsufficientMemoryError when even unloading everything would not make room.
    """
    if incoming > budget:
        raise InsufficientMemoryError(
            f"model needs {incoming} bytes, more than the whole budget of {budget} bytes"
        )
    used = sum(size for _, size in lru_first)
    victims: list[tuple[str, int]] = []
    for name, size in lru_first:
        if used + incoming <= budget:
            break
        victims.append((name, size))
        used -= size
    for name, size in reversed(list(victims)):
        if used + size + incoming <= budget:
            victims.remove((name, size))
            used += size
    return [name for name, _ in victims]


class SharedExclusive:
    """An asyncio gate: any number of holders share it, or one holds it alone.

    Downloads and unpacking share it; a measured load holds it alone. CPython 3.11 crashes when
    tracemalloc starts or stops while another thread allocates outside the GIL (zlib does, unpacking
    an archive), so a measurement must not overlap a download, but downloads may overlap each
    other. A waiting exclusive holder goes first: a stream of downloads cannot starve a load.
    """

    def __init__(self) -> None:
        self._changed = asyncio.Condition()
        self._shared = 0
        self._exclusive = False
        self._exclusive_waiting = 0

    @contextlib.asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: not self._exclusive and not self._exclusive_waiting)
            self._shared += 1
        try:
            yield
        finally:
            async with self._changed:
                self._shared -= 1
                self._changed.notify_all()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        async with self._changed:
            self._exclusive_waiting += 1
            try:
                await self._changed.wait_for(lambda: not self._exclusive and not self._shared)
            finally:
                self._exclusive_waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            async with self._changed:
                self._exclusive = False
                self._changed.notify_all()


class ModelStore:
    """Resident models in least-recently-used order, with their measured sizes."""

    def __init__(
        self,
        load: Callable[[str, Path], Any],
        prepare: Callable[[Path], None],
        fetch_remote: Callable[[str, Path], Path],
        root: Path,
        budget_bytes: int,
        executor: Any,
        on_unload: Callable[[str], None] | None = None,
        on_load: Callable[[str, Any], None] | None = None,
    ) -> None:
        self._load = load
        self._prepare = prepare
        self._fetch_remote = fetch_remote
        self.root = root
        self.budget_bytes = budget_bytes
        self._executor = executor
        self._on_unload = on_unload
        self._on_load = on_load
        self._resident: OrderedDict[str, Resident] = OrderedDict()
        self._loading: dict[str, asyncio.Future[Resident]] = {}
        self._lock = asyncio.Lock()  # one load at a time: measurements must not overlap
        self._downloads = SharedExclusive()  # downloads side by side, never during a measurement

    @property
    def used_bytes(self) -> int:
        return sum(r.memory_bytes for r in self._resident.values())

    def listing(self) -> list[Resident]:
        return list(self._resident.values())

    def describe(self, name: str) -> Resident:
        resident = self._resident.get(name)
        if resident is None:
            raise ModelNotLoadedError(f"model {name!r} is not loaded")
        return resident

    def default_url(self, name: str) -> str:
        return str(self.root / name / "model")

    async def get(self, name: str) -> Any:
        """The handler for ``name``, marking it most recently used; waits for a load in progress."""
        resident = self._resident.get(name)
        if resident is None:
            pending = self._loading.get(name)
            if pending is None:
                raise ModelNotLoadedError(f"model {name!r} is not loaded")
            resident = await asyncio.shield(pending)
        self._resident.move_to_end(name)
        return resident.handler

    async def load(self, name: str, url: str | None) -> Resident:
        if name in self._resident or name in self._loading:
            raise ModelAlreadyLoadedError(f"model {name!r} is already loaded")
        loop = asyncio.get_running_loop()
        pending: asyncio.Future[Resident] = loop.create_future()
        self._loading[name] = pending
        try:
            resident = await self._load_locked(name, url or self.default_url(name))
        except BaseException as exc:
            pending.set_exception(exc)
            pending.exception()  # retrieved: nobody else may be waiting
            raise
        finally:
            del self._loading[name]
        pending.set_result(resident)
        return resident

    def has(self, name: str) -> bool:
        return name in self._resident

    async def _load_locked(self, name: str, url: str) -> Resident:
        loop = asyncio.get_running_loop()
        async with self._downloads.shared():
            local = await loop.run_in_executor(self._executor, self._fetch_remote, url, self.root / name)
            await loop.run_in_executor(self._executor, self._prepare, local)
        async with self._lock:
            # Make room for at least the artifact's size before loading, so the load itself
            # does not push the pod over its limit; the real size is settled afterwards. An
            # artifact larger than the whole budget is refused before anything is evicted.
            estimate = await loop.run_in_executor(self._executor, _tree_bytes, local)
            try:
                self._evict(plan_evictions(self._lru_sizes(), self.budget_bytes, estimate))
            except InsufficientMemoryError as exc:
                raise InsufficientMemoryError(f"model {name!r} (artifact on disk): {exc}") from exc
            async with self._downloads.exclusive():
                handler, size = await loop.run_in_executor(
                    self._executor, memory.measure, lambda: self._load(name, local)
                )
            try:
                victims = plan_evictions(self._lru_sizes(), self.budget_bytes, size)
            except InsufficientMemoryError as exc:
                raise InsufficientMemoryError(f"model {name!r}: {exc}") from exc
            self._evict(victims)
            resident = Resident(name=name, url=url, handler=handler, memory_bytes=size)
            self._resident[name] = resident
            log.info(
                "loaded model %s from %s: %d bytes; %d of %d bytes in use",
                name, url, size, self.used_bytes, self.budget_bytes,
            )  # fmt: skip
            if self._on_load is not None:
                self._on_load(name, handler)
            return resident

    def _lru_sizes(self) -> list[tuple[str, int]]:
        return [(r.name, r.memory_bytes) for r in self._resident.values()]

    def _evict(self, names: list[str]) -> None:
        for name in names:
            resident = self._resident.pop(name)
            log.info("evicted model %s (%d bytes, least recently used)", name, resident.memory_bytes)
            if self._on_unload is not None:
                self._on_unload(name)

    def unload(self, name: str) -> None:
        if name not in self._resident:
            raise ModelNotLoadedError(f"model {name!r} is not loaded")
        self._evict([name])


def _tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


FETCHED_MARK = ".fetched"  # written once a model's download is complete: the disk cache's own mark


def plan_disk_evictions(lru_first: Sequence[tuple[str, int]], budget: int, keep: set[str]) -> list[str]:
    """Artifacts to delete from the instance's disk, least recently used first, until the rest fit
    in ``budget`` bytes (pure). Those in ``keep`` (models in memory, the one just fetched) stay,
    even if the disk then stays over budget: the size limit of the volume is the last word."""
    used = sum(size for _, size in lru_first)
    victims = []
    for name, size in lru_first:
        if used <= budget:
            break
        if name not in keep:
            victims.append(name)
            used -= size
    return victims


class DiskCache:
    """The models on the instance's disk, least recently used first, with their sizes: a bounded
    cache (volumeSizeInGB) from which models unloaded for memory are loaded again."""

    def __init__(self, root: Path, budget_bytes: int | None) -> None:
        self.root = root
        self.budget_bytes = budget_bytes
        self._sizes: OrderedDict[str, int] | None = None  # read from the disk on first use

    def _entries(self) -> OrderedDict[str, int]:
        if self._sizes is None:
            found = [(p.parent.name, p.stat().st_mtime) for p in self.root.glob(f"*/{FETCHED_MARK}")]
            self._sizes = OrderedDict(
                (name, _tree_bytes(self.root / name)) for name, _ in sorted(found, key=lambda f: f[1])
            )
        return self._sizes

    def used(self, name: str) -> None:
        entries = self._entries()
        if name in entries:
            entries.move_to_end(name)

    def added(self, name: str, keep: set[str]) -> list[str]:
        """Record a fetched model; delete what no longer fits. Returns the names deleted."""
        entries = self._entries()
        entries[name] = _tree_bytes(self.root / name)
        entries.move_to_end(name)
        if self.budget_bytes is None:
            return []
        victims = plan_disk_evictions(list(entries.items()), self.budget_bytes, keep | {name})
        for victim in victims:
            del entries[victim]
            delete_artifact(self.root, victim)
            log.info("deleted model %s from the disk cache (least recently used)", victim)
        return victims

    def removed(self, name: str) -> None:
        self._entries().pop(name, None)

    def __len__(self) -> int:
        return len(self._entries())


def delete_artifact(root: Path, name: str) -> None:
    """Remove a model's files from the instance's disk (ModelCacheSetting Disabled)."""
    shutil.rmtree(root / name, ignore_errors=True)
