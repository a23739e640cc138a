"""Multi-model store: LRU eviction by measured memory, with real models of very different sizes."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sageport.server.errors import InsufficientMemoryError, ModelAlreadyLoadedError, ModelNotLoadedError
from sageport.server.handler import load_handler
from sageport.server.memory import measure
from sageport.server.multimodel import (
    FETCHED_MARK,
    DiskCache,
    ModelStore,
    SharedExclusive,
    plan_disk_evictions,
    plan_evictions,
)

MiB = 2**20


def test_plan_evicts_oldest_first_until_the_newcomer_fits() -> None:
    resident = [("old", 30), ("mid", 30), ("new", 30)]
    assert plan_evictions(resident, budget=100, incoming=10) == []
    assert plan_evictions(resident, budget=100, incoming=40) == ["old"]
    assert plan_evictions(resident, budget=100, incoming=60) == ["old", "mid"]
    with pytest.raises(InsufficientMemoryError):
        plan_evictions(resident, budget=100, incoming=101)


def test_plan_is_by_memory_not_count() -> None:
    # Evicting the one large model makes room for a medium one; the small ones stay.
    resident = [("large", 80), ("s1", 2), ("s2", 2), ("s3", 2)]
    assert plan_evictions(resident, budget=100, incoming=50) == ["large"]
    # Older small models that were walked past but did not need to go are kept.
    resident = [("s1", 2), ("s2", 2), ("large", 80), ("s3", 2)]
    assert plan_evictions(resident, budget=100, incoming=50) == ["large"]
    # Many small models do go when only all of them together make room.
    resident = [("s1", 10), ("s2", 10), ("s3", 10), ("recent", 60)]
    assert plan_evictions(resident, budget=100, incoming=35) == ["s1", "s2", "s3"]


def test_measure_sees_a_model_sized_allocation() -> None:
    _, size = measure(lambda: np.ones(16 * MiB // 8))
    assert 15 * MiB <= size <= 40 * MiB


def _knn_dir(root: Path, name: str, rows: int) -> Path:
    """A k-NN classifier keeps its training set: rows x 64 float64, so its size is known in advance."""
    import joblib
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(rows)
    features = rng.normal(size=(rows, 64))
    model_dir = root / name / "model"
    model_dir.mkdir(parents=True)
    joblib.dump(
        KNeighborsClassifier(n_neighbors=1).fit(features, np.arange(rows) % 3), model_dir / "model.joblib"
    )
    return model_dir


@pytest.fixture(scope="module")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    for name in ("big-a", "big-b"):
        _knn_dir(root, name, rows=40_000)  # ~20 MiB each
    for index in range(4):
        _knn_dir(root, f"small-{index}", rows=200)  # ~100 KiB each
    return root


def _store(root: Path, budget: int, pool: ThreadPoolExecutor, unloaded: list[str]) -> ModelStore:
    def load(name: str, model_dir: Path) -> Any:
        return load_handler(
            name, model_dir, framework=None, program="inference.py", default_accept="application/json"
        )

    def local_only(url: str, destination: Path) -> Path:
        return Path(url)

    return ModelStore(load, lambda _: None, local_only, root, budget, pool, on_unload=unloaded.append)


async def test_budget_forces_lru_eviction_by_measured_size(model_root: Path) -> None:
    unloaded: list[str] = []
    with ThreadPoolExecutor(2) as pool:
        store = _store(model_root, 32 * MiB, pool, unloaded)
        for index in range(4):
            await store.load(f"small-{index}", None)
        big_a = await store.load("big-a", None)
        assert 18 * MiB < big_a.memory_bytes < 32 * MiB, (
            "measured size should reflect the 20 MiB training set"
        )
        assert unloaded == [], "small models and one big one fit together"

        await store.get("small-0")  # touched: now the most recently used small model
        await store.load("big-b", None)
        # big-a had to go; the small ones were not evicted because they do not make the difference.
        assert unloaded == ["big-a"]
        assert {r.name for r in store.listing()} == {"small-0", "small-1", "small-2", "small-3", "big-b"}
        assert store.used_bytes <= store.budget_bytes

        handler = await store.get("small-2")
        assert handler.predict(np.zeros((1, 64)), None).shape == (1,)
        with pytest.raises(ModelNotLoadedError):
            await store.get("big-a")


async def test_load_conflicts_unload_and_too_big(model_root: Path) -> None:
    unloaded: list[str] = []
    with ThreadPoolExecutor(2) as pool:
        store = _store(model_root, 4 * MiB, pool, unloaded)
        await store.load("small-0", None)
        with pytest.raises(ModelAlreadyLoadedError):
            await store.load("small-0", None)
        with pytest.raises(InsufficientMemoryError, match="big-a"):
            await store.load("big-a", None)
        assert "big-a" not in {r.name for r in store.listing()}
        store.unload("small-0")
        assert unloaded == ["small-0"]
        with pytest.raises(ModelNotLoadedError):
            store.unload("small-0")


async def test_concurrent_invocations_wait_for_a_load_in_progress(model_root: Path) -> None:
    with ThreadPoolExecutor(2) as pool:
        store = _store(model_root, 64 * MiB, pool, [])
        loading = asyncio.ensure_future(store.load("small-1", None))
        await asyncio.sleep(0)
        handler = await store.get("small-1")
        assert handler.name == "small-1"
        await loading


def test_disk_evictions_take_the_idle_least_recently_used_first() -> None:
    lru_first = [("a", 40), ("b", 30), ("c", 20), ("d", 50)]
    assert plan_disk_evictions(lru_first, 200, set()) == []
    assert plan_disk_evictions(lru_first, 100, set()) == ["a"]
    assert plan_disk_evictions(lru_first, 70, set()) == ["a", "b"]
    assert plan_disk_evictions(lru_first, 100, {"a"}) == ["b", "c"]  # a is in memory: kept
    assert plan_disk_evictions(lru_first, 10, {"a", "b", "c", "d"}) == []  # nothing idle to delete


def test_the_disk_cache_deletes_idle_artifacts_beyond_its_budget(tmp_path: Path) -> None:
    def fetched(name: str, size: int) -> None:
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.bin").write_bytes(b"x" * size)
        (tmp_path / name / FETCHED_MARK).touch()

    fetched("old", 400)
    cache = DiskCache(tmp_path, budget_bytes=1000)
    assert len(cache) == 1  # found on the disk at start
    fetched("mid", 400)
    assert cache.added("mid", keep=set()) == []
    cache.used("old")  # old is now the most recently used
    fetched("new", 400)
    assert cache.added("new", keep=set()) == ["mid"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new", "old"]
    fetched("newest", 400)
    assert cache.added("newest", keep={"new"}) == ["old"]  # new is in memory
    assert len(cache) == 2


async def test_downloads_run_side_by_side_but_never_during_a_measured_load(model_root: Path) -> None:
    # Two first calls for different models: both downloads must be in progress at once (the
    # barrier times out otherwise), and no measured load may overlap any download.
    both_downloading = threading.Barrier(2, timeout=5)
    downloading = 0
    overlaps: list[str] = []
    guard = threading.Lock()

    def fetch(url: str, destination: Path) -> Path:
        nonlocal downloading
        with guard:
            downloading += 1
        try:
            both_downloading.wait()
            return Path(url)
        finally:
            with guard:
                downloading -= 1

    def load(name: str, model_dir: Path) -> Any:
        if downloading:
            overlaps.append(name)
        return load_handler(
            name, model_dir, framework=None, program="inference.py", default_accept="application/json"
        )

    with ThreadPoolExecutor(4) as pool:
        store = ModelStore(load, lambda _: None, fetch, model_root, 64 * MiB, pool)
        loaded = await asyncio.gather(store.load("small-0", None), store.load("small-1", None))
    assert [r.name for r in loaded] == ["small-0", "small-1"]
    assert overlaps == []


async def test_a_waiting_exclusive_holder_goes_before_later_shared_ones() -> None:
    gate = SharedExclusive()
    order: list[str] = []
    first_in = asyncio.Event()

    async def shared(name: str, hold: float) -> None:
        async with gate.shared():
            order.append(name)
            first_in.set()
            await asyncio.sleep(hold)

    async def exclusive() -> None:
        async with gate.exclusive():
            order.append("exclusive")

    first = asyncio.ensure_future(shared("download-1", 0.05))
    await first_in.wait()
    waiting = asyncio.ensure_future(exclusive())
    await asyncio.sleep(0)
    later = asyncio.ensure_future(shared("download-2", 0))
    await asyncio.gather(first, waiting, later)
    assert order == ["download-1", "exclusive", "download-2"]
