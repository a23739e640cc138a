"""Measuring what loading a model costs in memory, and how much memory the pod may use."""

from __future__ import annotations

import os
import resource
import sys
import threading
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

_PAGE = resource.getpagesize()
_measure_lock = threading.Lock()


def resident_bytes() -> int:
    """The process's resident set size, from /proc (no psutil needed)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        # Not Linux: the peak RSS is the best cheap stand-in.
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


_IMPORT_MACHINERY = ("<frozen importlib._bootstrap>", "<frozen importlib._bootstrap_external>")


def _module_files(names: set[str]) -> set[str]:
    files = set()
    for name in names:
        module_file = getattr(sys.modules.get(name), "__file__", None)
        if module_file:
            files.add(module_file)
    return files


def measure(load: Callable[[], T]) -> tuple[T, int]:
    """Run ``load`` and return its result with the memory it kept.

    Two measurements. (1) The Python and numpy allocations still alive afterwards, leaving
    out those made by the import machinery and by the bodies of modules imported during the
    load: the first model of a kind imports its library, and that is the process's cost,
    not the model's. (2) The growth of the resident set, which also sees native allocations
    (xgboost, onnxruntime, torch) but cannot tell imports apart, so it counts only when the
    load imported nothing new. The larger wins. Loads are measured one at a time.
    """
    with _measure_lock:
        modules_before = set(sys.modules)
        resident_before = resident_bytes()
        tracing = not tracemalloc.is_tracing()
        if tracing:
            tracemalloc.start(1)  # one frame: the allocation site is all the filter needs
        try:
            result = load()
            snapshot = tracemalloc.take_snapshot()
        finally:
            if tracing:
                tracemalloc.stop()
        imported = set(sys.modules) - modules_before
        excluded = _module_files(imported).union(_IMPORT_MACHINERY)
        snapshot = snapshot.filter_traces([tracemalloc.Filter(False, name) for name in excluded])
        traced = sum(trace.size for trace in snapshot.traces)
        grown = 0 if imported else resident_bytes() - resident_before
    return result, max(grown, traced, 0)


def container_memory_limit() -> int | None:
    """The cgroup (v2, then v1) memory limit, or None when unlimited or unknown."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            raw = Path(path).read_text().strip()
        except OSError:
            continue
        if raw.isdigit() and int(raw) < 1 << 60:
            return int(raw)
    return None


def default_budget(fraction: float = 0.7) -> int:
    """What the models may use when no budget is configured: a share of the pod's memory."""
    limit = container_memory_limit()
    if limit is None:
        limit = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return max(int(limit * fraction) - resident_bytes(), 0)
