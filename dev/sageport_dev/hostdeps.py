"""Install the Debian packages the real node and the image builder need, if any is missing.

``make demo`` and ``make test`` run this first, so a fresh machine needs nothing by hand:
containerd, runc and the CNI plugins run pods; iptables, iproute2 and conntrack carry
kube-proxy's and CNI's networking; debootstrap builds the images' root file system;
prometheus is the alarm source of ``make up PROMETHEUS=1`` and of the alarm tests (its binary
only: the stack runs it as its own child process, never as the package's service); redis-server
is the async inference queue, run the same way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from sageport_dev.real_node import DEBIAN_PACKAGES

PROMETHEUS_PACKAGE = "prometheus"

REDIS_PACKAGE = "redis-server"  # the async inference queue of `make up` and the integration tests

PACKAGES = (*DEBIAN_PACKAGES, "debootstrap", PROMETHEUS_PACKAGE, REDIS_PACKAGE)


def missing(packages: tuple[str, ...] = PACKAGES) -> list[str]:
    if shutil.which("dpkg-query") is None:
        return []  # not Debian: real_node.missing_prerequisites() names what is absent
    # One query for all (each dpkg-query costs ~15 ms, and `make up` runs this every time); it
    # exits 1 when a package is unknown, and still lists the others.
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package}\t${Status}\n", *packages],
        capture_output=True,
        text=True,
        check=False,
    )
    installed = {
        name
        for name, _, status in (line.partition("\t") for line in result.stdout.splitlines())
        if status.endswith("install ok installed")
    }
    return [package for package in packages if package not in installed]


def main() -> int:
    absent = missing()
    if not absent:
        return 0
    prefix = [] if os.geteuid() == 0 else ["sudo"]
    print(f"installing Debian packages: {' '.join(absent)}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*prefix, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        [*prefix, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *absent], check=True, env=env
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
