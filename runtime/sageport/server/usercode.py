"""The user's ``code/inference.py`` (SageMaker inference-toolkit hooks) and its requirements."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import logging
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from sageport.server.errors import ModelLoadError

log = logging.getLogger(__name__)

HOOK_NAMES = ("model_fn", "input_fn", "predict_fn", "output_fn", "transform_fn")
# Arity of each hook without the optional trailing ``context`` argument the toolkit may pass.
_BASE_ARITY = {"model_fn": 1, "input_fn": 2, "predict_fn": 2, "output_fn": 2, "transform_fn": 4}


@dataclass(frozen=True)
class Hook:
    """A user hook and whether it takes the extra ``context`` argument."""

    function: Callable[..., Any]
    wants_context: bool

    def __call__(self, *args: Any, context: Any) -> Any:
        return self.function(*args, context) if self.wants_context else self.function(*args)


@dataclass(frozen=True)
class UserHooks:
    model_fn: Hook | None = None
    input_fn: Hook | None = None
    predict_fn: Hook | None = None
    output_fn: Hook | None = None
    transform_fn: Hook | None = None
    source: Path | None = None


def _positional_arity(function: Callable[..., Any]) -> int | None:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters):
        return None
    return sum(1 for p in parameters if p.kind in kinds)


def hooks_from_module(module: ModuleType, source: Path | None = None) -> UserHooks:
    found: dict[str, Hook] = {}
    for name in HOOK_NAMES:
        function = getattr(module, name, None)
        if function is None:
            continue
        if not callable(function):
            raise ModelLoadError(f"{name} in {source} is not callable")
        arity = _positional_arity(function)
        found[name] = Hook(function, wants_context=arity is not None and arity > _BASE_ARITY[name])
    return UserHooks(source=source, **found)


def install_requirements(requirements: Path, target: Path | None) -> None:
    """``pip install -r`` (or ``uv pip install``) the model's requirements before importing its code."""
    if importlib.util.find_spec("pip") is not None:
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "-r",
            str(requirements),
        ]
    elif (uv := shutil.which("uv")) is not None:
        command = [uv, "pip", "install", "--python", sys.executable, "-r", str(requirements)]
    else:
        raise ModelLoadError(f"{requirements} needs installing but neither pip nor uv is available")
    if target is not None:
        # A read-only image (readOnlyRootFilesystem) installs into a writable volume instead.
        target.mkdir(parents=True, exist_ok=True)
        command += ["--target", str(target)]
        if str(target) not in sys.path:
            sys.path.insert(0, str(target))
    log.info("installing %s: %s", requirements, " ".join(command))
    # cwd = the code directory, so relative paths in requirements.txt mean what the author meant.
    result = subprocess.run(command, cwd=requirements.parent, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise ModelLoadError(f"installing {requirements} failed (exit {result.returncode}):\n{tail}")
    importlib.invalidate_caches()


def load_user_code(
    model_dir: Path,
    program: str,
    *,
    install: bool = True,
    target: Path | None = None,
    code_dir: Path | None = None,
) -> UserHooks:
    """Import ``<code_dir>/<program>`` when present (``code_dir`` defaults to ``model_dir/code``,
    where SageMaker's repacked models keep it); empty hooks otherwise."""
    code_dir = code_dir if code_dir is not None else model_dir / "code"
    script = code_dir / program
    if not script.is_file():
        return UserHooks()
    requirements = code_dir / "requirements.txt"
    if install and requirements.is_file():
        install_requirements(requirements, target)
    # A name unique per script, so several multi-model entries can each have an inference.py.
    digest = hashlib.sha1(str(script.resolve()).encode()).hexdigest()[:12]
    module_name = f"sageport_user_code_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, script)
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"cannot import {script}")
    module = importlib.util.module_from_spec(spec)
    if str(code_dir) not in sys.path:
        sys.path.insert(0, str(code_dir))  # the script may import its sibling modules
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ModelLoadError(f"importing {script} failed: {type(exc).__name__}: {exc}") from exc
    sys.modules[module_name] = module
    log.info("using hooks from %s", script)
    return hooks_from_module(module, script)
