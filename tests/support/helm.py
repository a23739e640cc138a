"""The real helm binary (built and cached by dev/sageport_dev/build.py) and the chart it renders."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.manifests import REPO

CHART = REPO / "charts" / "sageport"
RELEASE = "sageport"
NAMESPACE = "sageport-system"


@functools.cache
def helm_binary() -> Path:
    """The cached helm; built (with whatever else is missing) only when it is not there yet."""
    from sageport_dev import build

    cached = [b.path for b in build.all_binaries() if b.name == "helm" and b.cached]
    return cached[0] if cached else build.ensure_binaries()["helm"]


@functools.cache
def _helm_home() -> Path:
    home = Path(tempfile.mkdtemp(prefix="sageport-helm-home-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    return home


def helm(*args: str, check: bool = True, kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run helm with its cache, config and data in a scratch directory (never ~/.cache/helm)."""
    home = _helm_home()
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    env.pop("KUBECONFIG", None)
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    result = subprocess.run(
        [str(helm_binary()), *args], capture_output=True, text=True, env=env, check=False, timeout=120
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
    return result


@dataclass(frozen=True)
class Rendered:
    """The documents of one `helm template`, with lookups by kind and name."""

    docs: tuple[dict[str, Any], ...]

    def kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        found = [
            d
            for d in self.kind(kind)
            if d["metadata"]["name"] == name
            and (namespace is None or d["metadata"].get("namespace") == namespace)
        ]
        assert len(found) == 1, f"{kind}/{name} rendered {len(found)} times"
        return found[0]

    def has(self, kind: str, name: str) -> bool:
        return any(d["metadata"]["name"] == name for d in self.kind(kind))


@functools.cache
def render(*args: str) -> Rendered:
    """`helm template sageport charts/sageport -n sageport-system ARGS...`, parsed."""
    result = helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, *args)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 5x faster on the CRDs
    return Rendered(tuple(d for d in yaml.load_all(result.stdout, Loader=loader) if d))
