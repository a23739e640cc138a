"""Build sageport's runtime and operator images without Docker, and import them into containerd.

``python -m sageport_dev.images build``: build whatever is missing, print the refs.
``python -m sageport_dev.images import --address SOCKET``: the same, then ``ctr images import``.

Each image is three uncompressed layers written by :mod:`sageport_dev.oci`:

1. base: a Debian bookworm root file system made by ``debootstrap --variant=minbase`` with
   python3 (3.11), ca-certificates and libgomp1, stripped of docs, man pages, locales, apt
   lists and caches, with the user ``sageport`` (65532:65532) and precompiled stdlib;
2. deps: the locked dependencies of the image's extra (``uv export --frozen``), installed
   with ``uv pip install --target /opt/sageport/lib`` for CPython 3.11 on manylinux_2_36;
3. app: our wheel (``uv build --wheel``), the ``/usr/local/bin`` wrappers and the directories
   the non-root user writes to.

Everything is cached under ``$SAGEPORT_CACHE`` (``~/.cache/sageport``): the root file system
in ``rootfs-bookworm-<ROOTFS_VERSION>/``, layers in ``images/blobs/<sha256>`` (found through
``images/layers/<key>.json``) and each image as an OCI layout tar in
``images/<name>-<hash12>.tar``. The hash in the tag covers every input (base layer digest,
exported requirements from uv.lock, the wheel's files, the image recipe), so an unchanged tree
rebuilds nothing. Builds hold the same file lock as ``dev/sageport_dev/build.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sageport_dev import oci
from sageport_dev.build import CACHE_ROOT, _build_lock
from sageport_dev.mounts import unmount_below
from sageport_dev.processes import run_checked

Log = Callable[[str], None]

REPO = Path(__file__).resolve().parents[2]
UV_VERSION = "0.13.8"  # the Makefile's UV_VERSION
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
ROOTFS_INCLUDE = ("python3", "ca-certificates", "libgomp1")
ROOTFS_VERSION = 1  # bump when ROOTFS_INCLUDE or _finish_rootfs changes
RECIPE_VERSION = 1  # bump when the layer or image recipe below changes (part of every image hash)
PYTHON_VERSION = "3.11"  # bookworm's python3
PYTHON_PLATFORM = "x86_64-manylinux_2_36"  # bookworm's glibc
USER_ID = 65532
USER_NAME = "sageport"
HOME = f"/home/{USER_NAME}"
LIB_DIR = "/opt/sageport/lib"
REGISTRY = "docker.io/sageport"
PIP_VERSION = "26.3"
KEEP_IMAGE_TARS = 2  # per image name; older tars are deleted after a build

IMAGES_DIR = CACHE_ROOT / "images"
ROOTFS_DIR = CACHE_ROOT / f"rootfs-{SUITE}-{ROOTFS_VERSION}"

_BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "PYTHONPATH": LIB_DIR,
    "PYTHONUNBUFFERED": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}


@dataclass(frozen=True)
class ImageSpec:
    """What distinguishes one image from the other; all of it goes into the image hash."""

    name: str
    extra: str  # the pyproject extra whose locked dependencies form the deps layer
    wrappers: Mapping[str, str]  # /usr/local/bin/<key>: exec python3 -m <value> "$@"
    cmd: tuple[str, ...]
    working_dir: str
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    writable_dirs: tuple[str, ...] = ()  # created owned by USER_ID
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    exposed_ports: tuple[str, ...] = ()
    extra_packages: tuple[str, ...] = ()  # pinned, not in uv.lock; installed into the deps layer too


SPECS = (
    ImageSpec(
        name="runtime",
        extra="runtime",
        # A model's code/requirements.txt is installed with pip at start (python3-minimal has none).
        extra_packages=(f"pip=={PIP_VERSION}",),
        wrappers={
            "serve": "sageport.server serve",
            "sageport-server": "sageport.server",
            "sageport-gateway": "sageport.gateway",
            "sageport-router": "sageport.router",  # the Direct multi-container sidecar
            "sageport-async-agent": "sageport.asyncinf",  # the async inference sidecar
        },
        cmd=("serve",),
        working_dir="/opt/ml",
        # The image's own lib is root's: a model's requirements go to /tmp (an emptyDir in pods).
        env={"SM_MODEL_DIR": "/opt/ml/model", "SAGEPORT_REQUIREMENTS_TARGET": "/tmp/sageport-requirements"},
        writable_dirs=("/opt/ml/model", "/opt/ml/models"),
        labels={
            # SageMaker reads these: the server honours SAGEMAKER_BIND_TO_PORT and the multi-model API.
            "com.amazonaws.sagemaker.capabilities.accept-bind-to-port": "true",
            "com.amazonaws.sagemaker.capabilities.multi-models": "true",
        },
        exposed_ports=("8080/tcp",),
    ),
    ImageSpec(
        name="operator",
        extra="operator",
        wrappers={"sageport-operator": "sageport.operator"},
        cmd=("sageport-operator",),
        working_dir=HOME,
    ),
)


class ImageError(RuntimeError):
    pass


# -- public API ---------------------------------------------------------------------------------


def ensure_images(log: Log = print) -> dict[str, str]:
    """Build whatever is not cached; return ``{"runtime": ref, "operator": ref}``."""
    started = time.monotonic()
    with _step(log, "base root file system and layer"):
        base = _ensure_base(log)
    version = _project_version()
    refs: dict[str, str] = {}
    missing: list[tuple[ImageSpec, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="inputs-", dir=_work_dir()) as tmp:
        with _step(log, "wheel"):
            wheel = _build_wheel(Path(tmp))
            wheel_hash = _wheel_hash(wheel)
        for spec in SPECS:
            with _step(log, f"{spec.name}: requirements"):
                requirements = _export_requirements(spec.extra)
            image_hash = _image_hash(spec, version, base.blob.digest, requirements, wheel_hash)
            ref = f"{REGISTRY}/{spec.name}:{version}-{image_hash[:12]}"
            refs[spec.name] = ref
            if image_tar(ref).is_file():
                log(f"{spec.name}: cached {image_tar(ref)}")
            else:
                missing.append((spec, ref, requirements))
        if missing:
            with _build_lock():
                for spec, ref, requirements in missing:
                    if not image_tar(ref).is_file():  # another build may have made it meanwhile
                        _build_image(spec, ref, base, requirements, wheel, log)
                _collect_garbage(log)
    log(f"images ready in {time.monotonic() - started:.1f} s: {', '.join(refs.values())}")
    return refs


def image_tar(ref: str) -> Path:
    """The cached OCI layout tar of ``ref`` (``docker.io/sageport/<name>:<version>-<hash12>``)."""
    repository, _, tag = ref.rpartition(":")
    name = repository.rpartition("/")[2]
    image_hash = tag.rpartition("-")[2]
    if not repository or len(image_hash) != 12 or any(c not in "0123456789abcdef" for c in image_hash):
        raise ValueError(f"not a sageport image ref (<repository>:<version>-<hash12>): {ref!r}")
    return IMAGES_DIR / f"{name}-{image_hash}.tar"


def import_images(
    address: Path,
    refs: Iterable[str],
    log: Log = print,
    *,
    namespace: str = "k8s.io",
    snapshotter: str | None = None,
) -> None:
    """``ctr images import`` each of our built images into containerd at ``address``."""
    for ref in refs:
        import_image(address, ref, image_tar(ref), log, namespace=namespace, snapshotter=snapshotter)


def import_image(
    address: Path,
    ref: str,
    tar: Path,
    log: Log = print,
    *,
    namespace: str = "k8s.io",
    snapshotter: str | None = None,
) -> bool:
    """Import the OCI archive ``tar`` (naming ``ref``) unless containerd lists ``ref`` already;
    True if it imported. ``snapshotter`` is the one to unpack into (ctr's default is overlayfs;
    pass the snapshotter the CRI plugin uses)."""
    ctr = ["ctr", "--address", str(address), "--namespace", namespace]
    if ref in _run([*ctr, "images", "ls", "-q"]).split():
        log(f"{ref}: already in containerd ({namespace})")
        return False
    started = time.monotonic()
    unpack = ["--snapshotter", snapshotter] if snapshotter else []
    _run([*ctr, "images", "import", *unpack, str(tar)])
    if ref not in _run([*ctr, "images", "ls", "-q"]).split():
        raise ImageError(f"ctr images import did not create {ref}")
    log(f"{ref}: imported in {time.monotonic() - started:.1f} s")
    return True


# -- base: root file system and its layer -------------------------------------------------------


def _rootfs_dir(extra_debs: tuple[str, ...] = ()) -> Path:
    """The cached root file system: ROOTFS_DIR, or with ``extra_debs`` one of its own (named by them)."""
    if not extra_debs:
        return ROOTFS_DIR
    return ROOTFS_DIR.with_name(f"{ROOTFS_DIR.name}-{_sha256(' '.join(sorted(extra_debs)).encode())[:12]}")


def _base_key(extra_debs: tuple[str, ...] = ()) -> str:
    return f"base-{_rootfs_dir(extra_debs).name}-r{RECIPE_VERSION}"


def _ensure_base(log: Log, extra_debs: tuple[str, ...] = ()) -> oci.Layer:
    key = _base_key(extra_debs)
    layer = _cached_layer(key)
    if layer is None:
        with _build_lock():
            layer = _cached_layer(key)
            if layer is None:
                root = _rootfs_dir(extra_debs)
                if not root.is_dir():
                    _build_rootfs(log, root, (*ROOTFS_INCLUDE, *extra_debs))
                with _step(log, "base layer"):
                    layer = _write_layer(
                        key,
                        root,
                        oci.keep_owner,
                        f"debootstrap {SUITE} minbase {' '.join(extra_debs)}".strip(),
                    )
    return layer


def _build_rootfs(log: Log, root: Path, include: tuple[str, ...]) -> None:
    if os.geteuid() != 0:
        raise ImageError(f"debootstrap needs root: run once as root to create {root}")
    tmp = root.with_name(f".{root.name}.tmp")
    _remove_tree(tmp)
    with _step(log, f"debootstrap {SUITE} into {root} (cold: 1-2 min, more with extra packages)"):
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(include)}",
                SUITE,
                str(tmp),
                MIRROR,
            ]
        )
    with _step(log, "strip root file system, add user, compile stdlib"):
        _finish_rootfs(tmp)
    tmp.rename(root)  # atomic: a half-made root file system never looks cached


def _finish_rootfs(root: Path) -> None:
    """What an image needs and nothing else: no docs, caches, logs, device nodes or host files."""
    for rel in ("usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian"):
        _remove_tree(root / rel)
    for rel in ("var/cache", "var/log", "var/lib/apt/lists", "dev", "tmp"):
        _empty_dir(root / rel)
    for doc in (root / "usr/share/doc").iterdir():  # keep only the licences (copyright files)
        for entry in doc.iterdir() if doc.is_dir() and not doc.is_symlink() else ():
            if entry.name != "copyright":
                _remove_path(entry)
    for rel in ("etc/resolv.conf", "etc/hostname", "etc/machine-id"):
        (root / rel).unlink(missing_ok=True)  # the container runtime provides them
    for old in (root / "var/lib/dpkg").glob("*-old"):
        old.unlink()
    with (root / "etc/passwd").open("a") as passwd:
        passwd.write(f"{USER_NAME}:x:{USER_ID}:{USER_ID}:{USER_NAME}:{HOME}:/usr/sbin/nologin\n")
    with (root / "etc/group").open("a") as group:
        group.write(f"{USER_NAME}:x:{USER_ID}:\n")
    home = root / HOME.lstrip("/")
    home.mkdir(parents=True)
    os.chown(home, USER_ID, USER_ID)
    # The variant pod's init container runs `python -m sageport.storage`.
    (root / "usr/local/bin/python").symlink_to("/usr/bin/python3")
    # Debian's .pyc check source mtimes, which the layer's fixed mtime breaks: replace them.
    for cache in sorted(root.glob("usr/lib/python3*/**/__pycache__"), reverse=True):
        shutil.rmtree(cache)
    _compile(root, [root / "usr/lib/python3.11", root / "usr/lib/python3/dist-packages"])


# -- deps and app layers ------------------------------------------------------------------------


def _build_image(
    spec: ImageSpec, ref: str, base: oci.Layer, requirements: str, wheel: Path, log: Log
) -> None:
    deps_key = f"deps-{spec.extra}-" + _sha256(
        oci.canonical_json(
            [RECIPE_VERSION, PYTHON_VERSION, PYTHON_PLATFORM, requirements, spec.extra_packages]
        )
    )
    deps = _cached_layer(deps_key)
    if deps is None:
        with _step(log, f"{spec.name}: deps layer ({spec.extra} extra)"), _staging() as staging:
            _fill_deps(staging, requirements, spec.extra_packages)
            deps = _write_layer(deps_key, staging, oci.root_owner, f"uv pip install --target {LIB_DIR}")
    app_key = f"app-{spec.name}-{image_tar(ref).stem.rpartition('-')[2]}"
    app = _cached_layer(app_key)
    if app is None:
        with _step(log, f"{spec.name}: app layer"), _staging() as staging:
            _fill_app(staging, spec, wheel)
            owned = {d.lstrip("/") for d in spec.writable_dirs}
            app = _write_layer(
                app_key,
                staging,
                lambda path, _st: (USER_ID, USER_ID) if path in owned else (0, 0),
                f"{wheel.name} and /usr/local/bin wrappers",
            )
    layers = (base, deps, app)
    config = oci.image_config(
        layers,
        env={**_BASE_ENV, **spec.env},
        cmd=spec.cmd,
        user=f"{USER_ID}:{USER_ID}",
        working_dir=spec.working_dir,
        labels={
            "org.opencontainers.image.title": f"sageport-{spec.name}",
            "org.opencontainers.image.version": ref.rpartition(":")[2],
            **spec.labels,
        },
        exposed_ports=spec.exposed_ports,
    )
    _write_image_tar(spec.name, ref, config, layers, log)


def _fill_deps(staging: Path, requirements: str, extra_packages: tuple[str, ...]) -> None:
    reqs = staging.parent / f"{staging.name}.requirements.txt"
    reqs.write_text(requirements)
    try:
        _uv_install_target(staging, ["-r", str(reqs)])
    finally:
        reqs.unlink()
    if extra_packages:  # separately: the exported requirements carry hashes, these do not
        _uv_install_target(staging, ["--no-deps", *extra_packages])
    _compile(staging, [staging / LIB_DIR.lstrip("/")])


def _fill_app(staging: Path, spec: ImageSpec, wheel: Path) -> None:
    _uv_install_target(staging, ["--no-deps", str(wheel)])
    bin_dir = staging / "usr/local/bin"
    bin_dir.mkdir(parents=True)
    for name, module in spec.wrappers.items():
        wrapper = bin_dir / name
        wrapper.write_text(f'#!/bin/sh\nexec python3 -m {module} "$@"\n')
        wrapper.chmod(0o755)
    for rel in spec.writable_dirs:
        (staging / rel.lstrip("/")).mkdir(parents=True, mode=0o755)
    _compile(staging, [staging / LIB_DIR.lstrip("/")])


def _uv_install_target(staging: Path, args: list[str]) -> None:
    lib = staging / LIB_DIR.lstrip("/")
    _run(
        [
            str(_uv()),
            "pip",
            "install",
            "--quiet",
            "--target",
            str(lib),
            "--python",
            _host_python(),
            "--python-version",
            PYTHON_VERSION,
            "--python-platform",
            PYTHON_PLATFORM,
            *args,
        ],
        env=_uv_env(),
    )
    # Console scripts made by --target carry the host's shebang; the image has its own wrappers.
    _remove_tree(lib / "bin")
    (lib / ".lock").unlink(missing_ok=True)


def _compile(root: Path, dirs: list[Path]) -> None:
    """Precompile .pyc (hash-based, never checked: the image is immutable) with paths as in the image."""
    existing = [str(d) for d in dirs if d.is_dir()]
    compileall = [
        _host_python(),
        "-m",
        "compileall",
        "-q",
        "-j",
        "0",
        "--invalidation-mode",
        "unchecked-hash",
    ]
    as_in_image = ["-s", str(root), "-p", "/"]  # the source paths tracebacks show
    result = subprocess.run(
        [*compileall, *as_in_image, *existing],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:  # a few packages ship files that are not Python 3.11 (templates, tests)
        failed = [line for line in result.stdout.splitlines() if line.startswith("***")]
        print(f"compileall: {len(failed)} files not compiled (left as source)", file=sys.stderr)


# -- inputs -------------------------------------------------------------------------------------


def _build_wheel(out_dir: Path) -> Path:
    _run([str(_uv()), "build", "--wheel", "--quiet", "--out-dir", str(out_dir), str(REPO)], env=_uv_env())
    (wheel,) = out_dir.glob("*.whl")
    return wheel


def _wheel_hash(wheel: Path) -> str:
    """The hash of the wheel's files (names and contents), not of the zip's bytes."""
    sha = hashlib.sha256()
    with zipfile.ZipFile(wheel) as archive:
        for name in sorted(archive.namelist()):
            sha.update(f"{name}\0{hashlib.sha256(archive.read(name)).hexdigest()}\n".encode())
    return sha.hexdigest()


def _export_requirements(extra: str) -> str:
    out = _run(
        [
            str(_uv()),
            "export",
            "--frozen",
            "--no-dev",
            "--extra",
            extra,
            "--no-emit-project",
            "--no-header",
            "--quiet",
        ],
        cwd=REPO,
        env=_uv_env(),
    )
    return "".join(line + "\n" for line in out.splitlines() if not line.startswith("#"))


def _image_hash(spec: ImageSpec, version: str, base_digest: str, requirements: str, wheel_hash: str) -> str:
    inputs = {
        "recipe": RECIPE_VERSION,
        "version": version,
        "base": base_digest,
        "python": [PYTHON_VERSION, PYTHON_PLATFORM],
        "requirements": requirements,
        "wheel": wheel_hash,
        "spec": {**dataclasses.asdict(spec), "env": {**_BASE_ENV, **spec.env}},
        "user": [USER_ID, LIB_DIR],
    }
    return _sha256(oci.canonical_json(inputs))


def _project_version() -> str:
    with (REPO / "pyproject.toml").open("rb") as pyproject:
        return str(tomllib.load(pyproject)["project"]["version"])


# -- AWS's serving stack: sagemaker-inference + Multi Model Server, built only when asked -------

MMS_NAME = "aws-mms"
MMS_DEBS = ("openjdk-17-jre-headless",)  # Multi Model Server's frontend is Java
MMS_SOURCE = REPO / "examples" / "aws-inference-toolkit" / "container"
MMS_PROGRAM_DIR = "/opt/program"
MMS_RECIPE_VERSION = 1  # bump when the recipe below changes


def ensure_mms_image(log: Log = print) -> str:
    """AWS's own serving stack as a bring-your-own image: Debian's JRE, the pinned
    ``sagemaker-inference`` and ``multi-model-server`` from PyPI and the example's handler, run as
    root (as AWS's images are). Not part of :func:`ensure_images`: only the tests that run it
    build it. Cached like the others, the hash covering its inputs."""
    started = time.monotonic()
    with _step(log, f"{MMS_NAME}: base root file system with {' '.join(MMS_DEBS)}"):
        base = _ensure_base(log, MMS_DEBS)
    requirements, program = mms_inputs()
    image_hash = mms_image_hash(base.blob.digest, requirements, program)
    ref = f"{REGISTRY}/{MMS_NAME}:{_project_version()}-{image_hash[:12]}"
    if image_tar(ref).is_file():
        log(f"{MMS_NAME}: cached {image_tar(ref)}")
        return ref
    with _build_lock():
        if not image_tar(ref).is_file():
            _build_mms_image(ref, base, requirements, program, log)
        _collect_garbage(log)
    log(f"{MMS_NAME}: ready in {time.monotonic() - started:.1f} s: {ref}")
    return ref


def mms_inputs(source: Path = MMS_SOURCE) -> tuple[str, dict[str, str]]:
    """The pinned requirements and the Python files (name -> text) the image is made of."""
    program = {path.name: path.read_text() for path in sorted(source.glob("*.py"))}
    return (source / "requirements.txt").read_text(), program


def mms_image_hash(base_digest: str, requirements: str, program: Mapping[str, str]) -> str:
    """The hash of every input of the image (its tag's suffix): a change to any rebuilds it."""
    inputs = [RECIPE_VERSION, MMS_RECIPE_VERSION, base_digest, PYTHON_VERSION, PYTHON_PLATFORM]
    return _sha256(oci.canonical_json([*inputs, requirements, dict(program)]))


def _build_mms_image(ref: str, base: oci.Layer, requirements: str, program: dict[str, str], log: Log) -> None:
    deps_key = f"deps-{MMS_NAME}-" + _sha256(
        oci.canonical_json(
            [RECIPE_VERSION, MMS_RECIPE_VERSION, PYTHON_VERSION, PYTHON_PLATFORM, requirements]
        )
    )
    deps = _cached_layer(deps_key)
    if deps is None:
        with _step(log, f"{MMS_NAME}: deps layer"), _staging() as staging:
            reqs = staging.parent / f"{staging.name}.requirements.txt"
            reqs.write_text(requirements)
            try:
                _uv_install_target(staging, ["-r", str(reqs)])
            finally:
                reqs.unlink()
            _compile(staging, [staging / LIB_DIR.lstrip("/")])
            deps = _write_layer(deps_key, staging, oci.root_owner, f"uv pip install --target {LIB_DIR}")
    app_key = f"app-{MMS_NAME}-{image_tar(ref).stem.rpartition('-')[2]}"
    app = _cached_layer(app_key)
    if app is None:
        with _step(log, f"{MMS_NAME}: app layer"), _staging() as staging:
            program_dir = staging / MMS_PROGRAM_DIR.lstrip("/")
            program_dir.mkdir(parents=True)
            for name, text in program.items():
                (program_dir / name).write_text(text)
            bin_dir = staging / "usr/local/bin"
            bin_dir.mkdir(parents=True)
            # The console scripts the toolkit runs by name (uv's --target ones carry the host's shebang).
            wrapper = bin_dir / "multi-model-server"
            wrapper.write_text('#!/bin/sh\nexec python3 -m mms.model_server "$@"\n')
            wrapper.chmod(0o755)
            app = _write_layer(
                app_key, staging, oci.root_owner, f"{MMS_PROGRAM_DIR} and /usr/local/bin wrappers"
            )
    layers = (base, deps, app)
    config = oci.image_config(
        layers,
        env={**_BASE_ENV, "PYTHONPATH": f"{MMS_PROGRAM_DIR}:{LIB_DIR}"},
        entrypoint=("python3", f"{MMS_PROGRAM_DIR}/entrypoint.py"),
        cmd=("serve",),
        user="0:0",
        working_dir=MMS_PROGRAM_DIR,
        labels={
            "org.opencontainers.image.title": f"sageport-example-{MMS_NAME}",
            "org.opencontainers.image.version": ref.rpartition(":")[2],
            "com.amazonaws.sagemaker.capabilities.accept-bind-to-port": "true",
            "com.amazonaws.sagemaker.capabilities.multi-models": "true",
        },
        exposed_ports=("8080/tcp",),
    )
    _write_image_tar(MMS_NAME, ref, config, layers, log)


def _write_image_tar(
    name: str, ref: str, config: Mapping[str, Any], layers: Sequence[oci.Layer], log: Callable[[str], None]
) -> None:
    """The image's OCI layout tar in the cache (written aside, then renamed: never half there),
    its layers' record, and older tars of the same image pruned."""
    target = image_tar(ref)
    with _step(log, f"{name}: OCI layout tar"):
        tmp = target.with_suffix(".tmp")
        with tmp.open("wb") as out:
            oci.write_image_layout(out, ref, config, layers)
        _layers_record(target).write_text(json.dumps([layer.blob.digest for layer in layers]))
        tmp.replace(target)
    log(f"{name}: {ref} -> {target} ({target.stat().st_size / 2**20:.0f} MiB)")
    _prune_image_tars(name, keep=target, log=log)


# -- cache, processes, helpers ------------------------------------------------------------------


def _cached_layer(key: str) -> oci.Layer | None:
    pointer = IMAGES_DIR / "layers" / f"{key}.json"
    if not pointer.is_file():
        return None
    record = json.loads(pointer.read_text())
    blob = oci.Blob(record["digest"], record["size"])
    path = IMAGES_DIR / "blobs" / blob.hex
    if not path.is_file() or path.stat().st_size != blob.size:
        return None
    return oci.Layer(path, blob, record["created_by"])


def _write_layer(key: str, root: Path, owner: oci.Owner, created_by: str) -> oci.Layer:
    blobs = IMAGES_DIR / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    tmp = blobs / f".{key}.tmp"
    with tmp.open("wb") as out:
        blob = oci.write_layer(root, out, owner)
    path = blobs / blob.hex
    tmp.replace(path)
    pointer = IMAGES_DIR / "layers" / f"{key}.json"
    pointer.parent.mkdir(parents=True, exist_ok=True)
    record = {"digest": blob.digest, "size": blob.size, "created_by": created_by}
    pointer.with_suffix(".tmp").write_text(json.dumps(record))
    pointer.with_suffix(".tmp").replace(pointer)
    return oci.Layer(path, blob, created_by)


def _layers_record(tar: Path) -> Path:
    return tar.with_suffix(".layers.json")  # the layer digests of an image tar, for _collect_garbage


def _prune_image_tars(name: str, keep: Path, log: Log) -> None:
    tars = sorted(IMAGES_DIR.glob(f"{name}-*.tar"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in [t for t in tars if t != keep][KEEP_IMAGE_TARS - 1 :]:
        old.unlink()
        _layers_record(old).unlink(missing_ok=True)
        log(f"removed old image tar {old}")


def _collect_garbage(log: Log) -> None:
    """Delete layer blobs (and their keys) that no kept image tar uses; the base layer stays."""
    used = {layer.blob.digest for layer in [_cached_layer(_base_key())] if layer is not None}
    for record in IMAGES_DIR.glob("*.layers.json"):
        if record.with_name(record.name.removesuffix(".layers.json") + ".tar").is_file():
            used.update(json.loads(record.read_text()))
        else:
            record.unlink()
    for pointer in (IMAGES_DIR / "layers").glob("*.json"):
        digest = json.loads(pointer.read_text())["digest"]
        if digest not in used:
            pointer.unlink()
            (IMAGES_DIR / "blobs" / digest.removeprefix("sha256:")).unlink(missing_ok=True)
            log(f"removed unused layer {pointer.stem} ({digest[:19]})")


def _work_dir() -> Path:
    work = IMAGES_DIR / "work"
    work.mkdir(parents=True, exist_ok=True)
    return work


@contextmanager
def _staging() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="staging-", dir=_work_dir()))
    try:
        yield path
    finally:
        _remove_tree(path)


@contextmanager
def _step(log: Log, what: str) -> Iterator[None]:
    started = time.monotonic()
    yield
    log(f"{what}: {time.monotonic() - started:.1f} s")


def _run(cmd: list[str], cwd: Path | None = None, env: Mapping[str, str] | None = None) -> str:
    return run_checked(cmd, ImageError, cwd=cwd, env=env)


def _uv() -> Path:
    """The Makefile's uv (bootstrapped the same way when missing)."""
    home = CACHE_ROOT / f"uv-{UV_VERSION}"
    uv = home / "bin" / "uv"
    if not uv.is_file():
        _run([sys.executable, "-m", "venv", str(home)])
        _run([str(home / "bin" / "pip"), "install", "--quiet", f"uv=={UV_VERSION}"])
    return uv


def _uv_env() -> dict[str, str]:
    return {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_CACHE_DIR": str(CACHE_ROOT / "uv-cache")}


def _host_python() -> str:
    """A CPython 3.11 on the host: compiles the image's .pyc (same bytecode as bookworm's 3.11)."""
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    found = shutil.which("python3.11")
    if found is None:
        raise ImageError("need a python3.11 on the host to precompile the image's .pyc files")
    return found


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        _remove_tree(path)
    else:
        path.unlink(missing_ok=True)


def _remove_tree(path: Path) -> None:
    """rm -rf, after unmounting anything below (an interrupted debootstrap leaves /proc mounted)."""
    if not path.exists():
        return
    unmount_below(path)
    shutil.rmtree(path)


def _empty_dir(path: Path) -> None:
    if path.is_dir():
        for entry in path.iterdir():
            _remove_path(entry)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sageport_dev images", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build", help="build the images that are not cached; print their refs and tars")
    importer = commands.add_parser("import", help="build, then ctr images import into containerd")
    importer.add_argument("--address", type=Path, required=True, help="containerd's socket")
    importer.add_argument("--namespace", default="k8s.io")
    importer.add_argument("--snapshotter", help="unpack into this snapshotter (ctr's default: overlayfs)")
    commands.add_parser("build-mms", help=f"build the {MMS_NAME} example image (AWS's toolkit and MMS)")
    args = parser.parse_args(argv)
    try:
        if args.command == "build-mms":
            ref = ensure_mms_image()
            print(f"{MMS_NAME}: {ref} {image_tar(ref)}")
            return 0
        refs = ensure_images()
        if args.command == "import":
            import_images(args.address, refs.values(), namespace=args.namespace, snapshotter=args.snapshotter)
    except ImageError as error:
        print(error, file=sys.stderr)
        return 1
    for name, ref in refs.items():
        print(f"{name}: {ref} {image_tar(ref)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
