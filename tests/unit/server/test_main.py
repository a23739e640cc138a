from __future__ import annotations

import pytest

from sageport.server.main import NATIVE_THREAD_VARIABLES, container_cpus, cpu_budget, limit_native_threads


@pytest.mark.parametrize(
    ("cpu_max", "affinity", "expected"),
    [
        ("max 100000", 8, 8),  # no quota: every CPU the process may run on
        ("100000 100000", 64, 1),  # limits.cpu: 1 on a 64-core node
        ("250000 100000", 64, 3),  # 2.5 CPUs round up
        ("50000 100000", 4, 1),  # half a CPU still needs one thread
        ("800000 100000", 2, 2),  # a quota above the CPUs present
        (None, 2, 2),
        ("garbage", 3, 3),
    ],
)
def test_cpu_budget(cpu_max: str | None, affinity: int, expected: int) -> None:
    assert cpu_budget(cpu_max, affinity) == expected


def test_native_threads_are_set_unless_the_user_chose() -> None:
    environ: dict[str, str] = {}
    limit_native_threads(environ, 3)
    assert environ == dict.fromkeys(NATIVE_THREAD_VARIABLES, "3")

    chosen = {"OMP_NUM_THREADS": "7"}
    limit_native_threads(chosen, 3)
    assert chosen == {"OMP_NUM_THREADS": "7"}


def test_container_cpus_is_at_least_one() -> None:
    assert container_cpus() >= 1
