"""Native model loaders: scikit-learn, XGBoost, PyTorch (TorchScript) and ONNX.

The framework comes from ``SAGEPORT_MODEL_FRAMEWORK`` or from the files the model directory
holds. Every loader returns an object with ``predict(array) -> array``, which is what the
default ``predict_fn`` calls; the heavy libraries are imported only by the loader that needs
them, so an ONNX container never pays for importing torch or xgboost.
"""

from __future__ import annotations

import importlib
import logging
import pickletools
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from sageport.server.errors import ModelLoadError

log = logging.getLogger(__name__)

# Suffixes (lower case) and exact file names that identify each framework's artifacts.
_SUFFIXES: dict[str, tuple[str, ...]] = {
    "onnx": (".onnx",),
    "pytorch": (".pt", ".pth", ".torchscript"),
    "xgboost": (".ubj", ".bst", ".xgb", ".xgboost"),
    "sklearn": (".joblib", ".pkl", ".pickle"),
}
_EXACT_NAMES = {"xgboost-model": "xgboost", "model.joblib": "sklearn"}
# A bare ".json" is an XGBoost model only when nothing else claims the directory: a stray JSON
# config next to model.joblib is common.
_WEAK_SUFFIXES = {".json": "xgboost"}
_IGNORED_DIRS = {"code", "__pycache__"}


class Predictor(Protocol):
    """A framework model plus its default prediction call.

    ``model`` is the framework's own object (estimator, Booster, ScriptModule, session): what
    the SageMaker framework containers' default ``model_fn`` returns, so a user ``predict_fn``
    receives the same thing it would there.
    """

    model: Any

    def predict(self, data: Any) -> Any: ...


def _candidate_files(model_dir: Path) -> list[Path]:
    files = []
    for path in sorted(model_dir.rglob("*")):
        relative = path.relative_to(model_dir)
        if (
            path.is_file()
            and not (set(relative.parts[:-1]) & _IGNORED_DIRS)
            and not path.name.startswith(".")
        ):
            files.append(path)
    return files


def classify(files: list[Path]) -> dict[str, list[Path]]:
    """Group artifact files by the framework they belong to (pure)."""
    found: dict[str, list[Path]] = {}
    weak: dict[str, list[Path]] = {}
    for path in files:
        name = path.name.lower()
        framework = _EXACT_NAMES.get(name) or next(
            (fw for fw, suffixes in _SUFFIXES.items() if name.endswith(suffixes)), None
        )
        if framework is not None:
            found.setdefault(framework, []).append(path)
        elif path.suffix.lower() in _WEAK_SUFFIXES:
            weak.setdefault(_WEAK_SUFFIXES[path.suffix.lower()], []).append(path)
    return found or weak


def detect(model_dir: Path, override: str | None) -> tuple[str, Path]:
    """The framework and the artifact file to load from ``model_dir``."""
    if not model_dir.is_dir():
        raise ModelLoadError(f"model directory {str(model_dir)!r} does not exist")
    groups = classify(_candidate_files(model_dir))
    if override is not None:
        files = groups.get(override)
        if not files:
            # An explicit framework may use a file name we do not recognise (e.g. "model").
            files = [p for p in _candidate_files(model_dir) if p.suffix.lower() not in (".txt", ".md", ".py")]
        if not files:
            raise ModelLoadError(f"no {override} model file in {str(model_dir)!r}")
        return override, _only(files, override, model_dir)
    if not groups:
        raise ModelLoadError(
            f"no model file found in {str(model_dir)!r} (looked for *.joblib/*.pkl, XGBoost *.json/*.ubj, "
            "*.pt TorchScript, *.onnx) and no code/inference.py with model_fn; "
            "set SAGEPORT_MODEL_FRAMEWORK to name the framework"
        )
    if len(groups) > 1:
        raise ModelLoadError(
            f"{str(model_dir)!r} holds models of several frameworks ({', '.join(sorted(groups))}); "
            "set SAGEPORT_MODEL_FRAMEWORK to choose one"
        )
    framework, files = next(iter(groups.items()))
    return framework, _only(files, framework, model_dir)


def _only(files: list[Path], framework: str, model_dir: Path) -> Path:
    if len(files) > 1:
        preferred = [p for p in files if p.stem in ("model", "xgboost-model")]
        if len(preferred) == 1:
            return preferred[0]
        names = ", ".join(str(p.relative_to(model_dir)) for p in files)
        raise ModelLoadError(f"several {framework} model files in {str(model_dir)!r}: {names}")
    return files[0]


class _SklearnPredictor:
    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, data: Any) -> Any:
        return self.model.predict(data)


class _XGBoostPredictor:
    def __init__(self, booster: Any) -> None:
        self.model = booster

    def predict(self, data: Any) -> Any:
        # inplace_predict skips building a DMatrix: the cheapest path for small requests.
        return self.model.inplace_predict(np.asarray(data))


class _TorchPredictor:
    def __init__(self, module: Any, torch: Any) -> None:
        self.model = module
        self.torch = torch

    def predict(self, data: Any) -> Any:
        tensor = self.torch.as_tensor(np.asarray(data, dtype=np.float32))
        with self.torch.inference_mode():
            output = self.model(tensor)
        return output.detach().cpu().numpy()


class _OnnxPredictor:
    def __init__(self, session: Any) -> None:
        self.model = session
        first = session.get_inputs()[0]
        self.input_name: str = first.name
        self.input_dtype = _ONNX_DTYPES.get(first.type, np.float32)

    def predict(self, data: Any) -> Any:
        feed = {self.input_name: np.asarray(data, dtype=self.input_dtype)}
        return self.model.run(None, feed)[0]


_ONNX_DTYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(string)": np.str_,
}


def _load_sklearn(path: Path) -> Predictor:
    import joblib

    return _SklearnPredictor(joblib.load(path))


def _load_xgboost(path: Path) -> Predictor:
    import xgboost

    if path.suffix.lower() in (".pkl", ".pickle", ".joblib"):
        import joblib

        return _SklearnPredictor(joblib.load(path))
    booster = xgboost.Booster()
    try:
        booster.load_model(str(path))
    except xgboost.core.XGBoostError:
        # SageMaker's XGBoost container saves "xgboost-model" pickled in older versions.
        import joblib

        return _SklearnPredictor(joblib.load(path))
    return _XGBoostPredictor(booster)


def _load_pytorch(path: Path) -> Predictor:
    try:
        # Through importlib: torch is optional and has no place in the type-checking environment.
        torch = importlib.import_module("torch")
    except ImportError as exc:
        raise ModelLoadError("a PyTorch model needs the torch package, which is not installed") from exc
    module = torch.jit.load(str(path), map_location="cpu")
    module.eval()
    return _TorchPredictor(module, torch)


def _load_onnx(path: Path) -> Predictor:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # One intra-op thread per session: the server runs requests concurrently in its own pool.
    options.intra_op_num_threads = 1
    return _OnnxPredictor(
        onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    )


LOADERS: dict[str, Callable[[Path], Predictor]] = {
    "sklearn": _load_sklearn,
    "xgboost": _load_xgboost,
    "pytorch": _load_pytorch,
    "onnx": _load_onnx,
}


# Libraries a framework's loader imports: importing them up front keeps the cost of the
# import out of the first model's measured memory (see memory.measure).
PRELOAD = {"sklearn": ("joblib", "sklearn"), "xgboost": ("xgboost",), "onnx": ("onnxruntime",), "pytorch": ()}


def pickled_modules(path: Path, max_opcodes: int = 200_000) -> set[str]:
    """Modules a pickle (or joblib file) names before its first embedded array (best effort).

    joblib writes raw array bytes into the pickle stream, so the opcode walk stops at the
    first thing it cannot parse; the estimator's classes are named before their arrays.
    """
    modules: set[str] = set()
    strings: list[str] = []
    try:
        with path.open("rb") as stream:
            for count, (opcode, argument, _pos) in enumerate(pickletools.genops(stream)):
                if count >= max_opcodes:
                    break
                if isinstance(argument, str):
                    strings = [*strings[-1:], argument]
                if opcode.name == "GLOBAL" and isinstance(argument, str):
                    modules.add(argument.split(" ", 1)[0])
                elif opcode.name == "STACK_GLOBAL" and len(strings) == 2:
                    modules.add(strings[0])
    except Exception:  # any parse failure just ends the walk
        pass
    return {m for m in modules if m and m.replace(".", "").replace("_", "").isalnum()}


def preload(model_dir: Path, override: str | None) -> None:
    """Import what loading ``model_dir`` will import, before its memory is measured.

    Best effort: a failure here is left for the real load to report.
    """
    try:
        framework, path = detect(model_dir, override)
    except ModelLoadError:
        return
    modules = set(PRELOAD[framework])
    if path.suffix.lower() in (".joblib", ".pkl", ".pickle") or path.name == "xgboost-model":
        modules |= pickled_modules(path)
    for module in sorted(modules):
        try:
            importlib.import_module(module)
        except Exception:  # a module the real load may not need after all
            continue


def load_native(model_dir: Path, override: str | None) -> Predictor:
    framework, path = detect(model_dir, override)
    log.info("loading %s model from %s", framework, path)
    try:
        return LOADERS[framework](path)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(
            f"cannot load {framework} model {str(path)!r}: {type(exc).__name__}: {exc}"
        ) from exc
