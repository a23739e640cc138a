"""Unmount what a harness run left mounted, before its directories are deleted."""

from __future__ import annotations

import subprocess
from pathlib import Path


def mounts_below(*roots: Path) -> list[str]:
    """The mount points at or below ``roots``."""
    resolved = [root.resolve() for root in roots]
    prefixes = tuple(f"{root}/" for root in resolved)
    exact = {str(root) for root in resolved}
    with open("/proc/self/mountinfo") as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    return [p for p in points if p.startswith(prefixes) or p in exact]


def unmount_below(*roots: Path) -> None:
    """Lazily unmount everything at or below ``roots``, deepest first.

    An interrupted debootstrap leaves /proc mounted in its root; kubelet bind-mounts its own
    root dir and mounts pod volumes below it; containerd mounts container root file systems.
    """
    for point in sorted(mounts_below(*roots), key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)
