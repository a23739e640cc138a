"""Obtain the pinned Kubernetes components from the Go module proxy and cache them.

No registry ships kube-apiserver or kwok binaries, so we build them from their Go modules.
``k8s.io/kubernetes`` carries ``replace`` directives and cannot be ``go install``ed, so we
generate a small wrapper module that requires it and replaces each staging module with its
published ``v0.Y.Z`` twin. Every binary lands in ``~/.cache/sageport/<name>-<version>/``;
a binary already there is never rebuilt.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "v1.36.3"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.7.0"
VERSITYGW_VERSION = "v1.8.0"  # S3-compatible server (posix backend) for artifact tests and the demo
HELM_VERSION = "v3.22.0"
KEDA_VERSION = "v2.20.2"  # event-driven autoscaler: serverless variants scale to and from zero through it
PAUSE_VERSION = "1"  # our own pause (pod sandbox) program: bump when _PAUSE_MAIN changes

# Commands whose modules have no replace directives: `go install module@version` works as is.
_GO_INSTALLABLE = {
    "kwok": f"sigs.k8s.io/kwok/cmd/kwok@{KWOK_VERSION}",
    "versitygw": f"github.com/versity/versitygw/cmd/versitygw@{VERSITYGW_VERSION}",
    "helm": f"helm.sh/helm/v3/cmd/helm@{HELM_VERSION}",
}

# KEDA's operator (scale loop, 0<->1) and its metrics API server (external metrics for the HPA, 1<->N).
KEDA_COMPONENTS = {"keda-operator": "cmd/operator", "keda-adapter": "cmd/adapter"}

KUBERNETES_COMPONENTS = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kubelet",
    "kube-proxy",
)

CACHE_ROOT = Path(os.environ.get("SAGEPORT_CACHE", Path.home() / ".cache" / "sageport"))

_ETCD_MAIN = """package main

import (
\t"os"

\t"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
"""

# The pod sandbox process: holds the pod's namespaces and exits on SIGTERM/SIGINT. Built here so
# that the real node needs no registry pull for its "pause" image.
_PAUSE_MAIN = """package main

import (
\t"os"
\t"os/signal"
\t"syscall"
)

func main() {
\tstop := make(chan os.Signal, 1)
\tsignal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
\t<-stop
}
"""


@dataclass(frozen=True)
class Binary:
    """One cached executable: where it lives and which version it is."""

    name: str
    version: str

    @property
    def path(self) -> Path:
        return CACHE_ROOT / f"{self.name}-{self.version}" / self.name

    @property
    def cached(self) -> bool:
        return self.path.is_file() and os.access(self.path, os.X_OK)


def all_binaries() -> list[Binary]:
    kube = [Binary(name, KUBERNETES_VERSION) for name in KUBERNETES_COMPONENTS]
    return [
        *kube,
        Binary("etcd", ETCD_VERSION),
        Binary("kwok", KWOK_VERSION),
        Binary("versitygw", VERSITYGW_VERSION),
        Binary("helm", HELM_VERSION),
        Binary("pause", PAUSE_VERSION),
        *(Binary(name, KEDA_VERSION) for name in KEDA_COMPONENTS),
    ]


def keda_crds() -> list[Path]:
    """KEDA's CRD manifests, copied from its module next to the operator binary by the build."""
    return sorted((Binary("keda-operator", KEDA_VERSION).path.parent / "crds").glob("*.yaml"))


def _go_env() -> dict[str, str]:
    go_root = CACHE_ROOT / "go"
    env = dict(os.environ)
    env.update(
        GOTOOLCHAIN="local",
        GOFLAGS="-mod=mod",
        CGO_ENABLED="0",
        GOCACHE=str(go_root / "build-cache"),
        GOMODCACHE=str(go_root / "mod-cache"),
        GOPATH=str(go_root / "path"),
    )
    if _go_minor_version() >= 27:
        # Go 1.27's JSONv2 breaks the apiserver's OpenAPI v2 document.
        env["GOEXPERIMENT"] = "nojsonv2"
    return env


def _go_minor_version() -> int:
    out = subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True, check=True)
    match = re.match(r"go1\.(\d+)", out.stdout.strip())
    return int(match.group(1)) if match else 0


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
    print(f"+ {' '.join(cmd)}", file=sys.stderr, flush=True)
    subprocess.run(cmd, cwd=cwd, env=env, check=True)


def _workdir(name: str) -> Path:
    path = CACHE_ROOT / "work" / name
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def _staging_replaces(env: dict[str, str], work: Path) -> list[str]:
    """The staging modules k8s.io/kubernetes replaces with ./staging paths, pinned to v0.Y.Z."""
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"k8s.io/kubernetes@{KUBERNETES_VERSION}"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    gomod = Path(json.loads(out.stdout)["GoMod"]).read_text()
    staging_version = "v0." + KUBERNETES_VERSION.split(".", 1)[1]
    modules = re.findall(r"^\s*(k8s\.io/[\w.-]+)\s*=>\s*\./staging/", gomod, re.MULTILINE)
    return [f"\t{module} => {module} {staging_version}" for module in sorted(set(modules))]


def _build_kubernetes(missing: list[Binary], env: dict[str, str]) -> None:
    work = _workdir("kubernetes")
    (work / "go.mod").write_text("module sageport.local/kubebuild\n\ngo 1.26\n")
    replaces = _staging_replaces(env, work)
    (work / "go.mod").write_text(
        "module sageport.local/kubebuild\n\ngo 1.26\n\n"
        f"require k8s.io/kubernetes {KUBERNETES_VERSION}\n\nreplace (\n" + "\n".join(replaces) + "\n)\n"
    )
    (work / "tools.go").write_text(
        '//go:build tools\n\npackage tools\n\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver/app"\n'
    )
    _run(["go", "mod", "tidy"], work, env)
    minor = KUBERNETES_VERSION.split(".")[1]
    ldflags = " ".join(
        f"-X {pkg}.{key}"
        for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for key in (f"gitVersion={KUBERNETES_VERSION}", "gitMajor=1", f"gitMinor={minor}")
    )
    out_dir = work / "bin"
    out_dir.mkdir()
    packages = [f"k8s.io/kubernetes/cmd/{b.name}" for b in missing]
    _run(
        ["go", "build", "-trimpath", "-ldflags", f"-s -w {ldflags}", "-o", str(out_dir), *packages], work, env
    )
    for binary in missing:
        _install(out_dir / binary.name, binary)


def _build_etcd(binary: Binary, env: dict[str, str]) -> None:
    work = _workdir("etcd")
    (work / "go.mod").write_text("module sageport.local/etcdbuild\n\ngo 1.26\n")
    (work / "main.go").write_text(_ETCD_MAIN)
    _run(["go", "get", f"go.etcd.io/etcd/server/v3@{ETCD_VERSION}"], work, env)
    _run(["go", "mod", "tidy"], work, env)
    _run(["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", "etcd", "."], work, env)
    _install(work / "etcd", binary)


def _build_pause(binary: Binary, env: dict[str, str]) -> None:
    work = _workdir("pause")
    (work / "go.mod").write_text("module sageport.local/pause\n\ngo 1.26\n")
    (work / "main.go").write_text(_PAUSE_MAIN)
    _run(["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", "pause", "."], work, env)
    _install(work / "pause", binary)


def _build_keda(missing: list[Binary], env: dict[str, str]) -> None:
    """KEDA's module has replace directives (k8s.io pins), so a wrapper module copies them verbatim."""
    module = "github.com/kedacore/keda/v2"
    work = _workdir("keda")
    (work / "go.mod").write_text("module sageport.local/kedabuild\n\ngo 1.26\n")
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{KEDA_VERSION}"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    downloaded = json.loads(out.stdout)
    _copy_keda_crds(Path(downloaded["Dir"]))
    gomod = Path(downloaded["GoMod"]).read_text()
    block = re.search(r"^replace \((.*?)^\)", gomod, re.MULTILINE | re.DOTALL)
    singles = re.findall(r"^replace (.+)$", gomod, re.MULTILINE)
    replaces = (block.group(1).strip().splitlines() if block else []) + [s for s in singles if s != "("]
    go_line = re.search(r"^go (\S+)$", gomod, re.MULTILINE)
    (work / "go.mod").write_text(
        f"module sageport.local/kedabuild\n\ngo {go_line.group(1) if go_line else '1.26'}\n\n"
        f"require {module} {KEDA_VERSION}\n\nreplace (\n"
        + "\n".join(f"\t{r.strip()}" for r in replaces)
        + "\n)\n"
    )
    packages = [f"{module}/{KEDA_COMPONENTS[b.name]}" for b in missing]
    (work / "tools.go").write_text(
        "//go:build tools\n\npackage tools\n\nimport (\n" + "".join(f'\t_ "{p}"\n' for p in packages) + ")\n"
    )
    _run(["go", "mod", "tidy"], work, env)
    ldflags = f"-s -w -X={module}/version.Version={KEDA_VERSION.lstrip('v')}"
    out_dir = work / "bin"
    out_dir.mkdir()
    for binary in missing:  # one `go build` at a time; the second reuses the first's compiled packages
        target = f"{module}/{KEDA_COMPONENTS[binary.name]}"
        _run(
            ["go", "build", "-trimpath", "-ldflags", ldflags, "-o", str(out_dir / binary.name), target],
            work,
            env,
        )
        _install(out_dir / binary.name, binary)


def _go_install(binary: Binary, env: dict[str, str]) -> None:
    work = _workdir(binary.name)
    gobin = work / "bin"
    _run(
        ["go", "install", "-trimpath", "-ldflags", "-s -w", _GO_INSTALLABLE[binary.name]],
        work,
        {**env, "GOBIN": str(gobin), "GOFLAGS": ""},
    )
    _install(gobin / binary.name, binary)


def _install(built: Path, binary: Binary) -> None:
    binary.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = binary.path.with_suffix(".tmp")
    shutil.copy2(built, tmp)
    tmp.chmod(0o755)
    tmp.replace(binary.path)  # atomic: a half-copied binary never looks cached


@contextmanager
def _build_lock() -> Iterator[None]:
    """Hold an exclusive lock on the cache while building: two builds never race."""
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    with (CACHE_ROOT / "build.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another build to finish (lock {lock.name})", file=sys.stderr, flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield  # the lock goes with the file descriptor


# Every CRD KEDA's operator watches: without the eventing.keda.sh ones it exits about 80 s after
# start ("timed out waiting for cache to be synced"), taking scale to zero down with it.
_KEDA_CRD_MARK = "eventing.keda.sh_cloudeventsources.yaml"


def _copy_keda_crds(module_dir: Path) -> None:
    """KEDA's CRD manifests next to the operator binary; copied before the binaries are built,
    since the binaries' presence is what marks the build as done."""
    crds = Binary("keda-operator", KEDA_VERSION).path.parent / "crds"
    crds.mkdir(parents=True, exist_ok=True)
    for crd in (module_dir / "config" / "crd" / "bases").glob("*.yaml"):
        shutil.copyfile(crd, crds / crd.name)


def _ensure_keda_crds(env: dict[str, str]) -> None:
    """A cache built before the eventing CRDs were copied gets them (the module is cached: quick)."""
    if (Binary("keda-operator", KEDA_VERSION).path.parent / "crds" / _KEDA_CRD_MARK).exists():
        return
    work = _workdir("keda-crds")
    (work / "go.mod").write_text("module sageport.local/kedacrds\n\ngo 1.26\n")
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"github.com/kedacore/keda/v2@{KEDA_VERSION}"],
        cwd=work, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    _copy_keda_crds(Path(json.loads(out.stdout)["Dir"]))


def ensure_binaries() -> dict[str, Path]:
    """Build whatever is not cached yet; return every binary's path, keyed by name."""
    binaries = all_binaries()
    if any(not b.cached for b in binaries):
        with _build_lock():
            # Look again: the build we may have waited for has probably made them.
            missing = [b for b in binaries if not b.cached]
            if missing:
                _build_missing(missing)
    if not (Binary("keda-operator", KEDA_VERSION).path.parent / "crds" / _KEDA_CRD_MARK).exists():
        with _build_lock():
            _ensure_keda_crds(_go_env())
    return {b.name: b.path for b in binaries}


def _build_missing(missing: list[Binary]) -> None:
    started = time.monotonic()
    names = ", ".join(f"{b.name} {b.version}" for b in missing)
    print(f"building {names} into {CACHE_ROOT} (cold: about 10 min)", file=sys.stderr, flush=True)
    env = _go_env()
    kube_missing = [b for b in missing if b.version == KUBERNETES_VERSION]
    keda_missing = [b for b in missing if b.name in KEDA_COMPONENTS]
    for binary in missing:
        if binary.name == "etcd":
            _build_etcd(binary, env)
        elif binary.name == "pause":
            _build_pause(binary, env)
        elif binary.name in _GO_INSTALLABLE:
            _go_install(binary, env)
    if kube_missing:
        _build_kubernetes(kube_missing, env)
    if keda_missing:
        _build_keda(keda_missing, env)
    print(f"cold build of {names}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)


if __name__ == "__main__":
    for name, path in ensure_binaries().items():
        print(f"{name}: {path}")
