"""Detection (pure) and real loads of models trained in the test session."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sageport.server import frameworks
from sageport.server.errors import ModelLoadError


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["model.joblib"], "sklearn"),
        (["model.pkl", "metadata.json"], "sklearn"),
        (["xgboost-model"], "xgboost"),
        (["model.json"], "xgboost"),
        (["model.ubj"], "xgboost"),
        (["model.pt"], "pytorch"),
        (["model.onnx", "labels.json"], "onnx"),
    ],
)
def test_detects_framework_from_files(tmp_path: Path, names: list[str], expected: str) -> None:
    for name in names:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "helper.pkl").write_bytes(b"")  # code/ never holds the model
    framework, path = frameworks.detect(tmp_path, None)
    assert framework == expected
    assert path.parent == tmp_path


def test_ambiguous_and_empty_directories_explain_themselves(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no model file"):
        frameworks.detect(tmp_path, None)
    (tmp_path / "model.onnx").write_bytes(b"")
    (tmp_path / "model.joblib").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="SAGEPORT_MODEL_FRAMEWORK"):
        frameworks.detect(tmp_path, None)
    assert frameworks.detect(tmp_path, "onnx") == ("onnx", tmp_path / "model.onnx")


def test_override_accepts_an_unrecognised_file_name(tmp_path: Path) -> None:
    (tmp_path / "model").write_bytes(b"")
    assert frameworks.detect(tmp_path, "sklearn") == ("sklearn", tmp_path / "model")


def test_sklearn(sklearn_dir: Path, sklearn_model: Any, iris: tuple[np.ndarray, np.ndarray]) -> None:
    predictor = frameworks.load_native(sklearn_dir, None)
    features = iris[0][:20]
    np.testing.assert_array_equal(predictor.predict(features), sklearn_model.predict(features))


def test_xgboost(xgboost_dir: Path, iris: tuple[np.ndarray, np.ndarray]) -> None:
    features, labels = iris
    probabilities = np.asarray(frameworks.load_native(xgboost_dir, None).predict(features))
    assert probabilities.shape == (150, 3)
    assert (probabilities.argmax(axis=1) == labels).mean() > 0.9


def test_onnx_matches_the_sklearn_model_it_came_from(
    onnx_dir: Path, sklearn_model: Any, iris: tuple[np.ndarray, np.ndarray]
) -> None:
    features = iris[0]
    labels = frameworks.load_native(onnx_dir, None).predict(features)
    assert (np.asarray(labels) == sklearn_model.predict(features)).mean() > 0.98


def test_pytorch_torchscript(tmp_path: Path) -> None:
    if importlib.util.find_spec("torch") is None:
        pytest.skip(
            "torch is not installed: PyPI's Linux torch wheels pull the CUDA stack (multi-GB) and the CPU-only "
            "index is not reachable from this machine; the TorchScript loader is exercised where torch exists"
        )
    import torch

    module = torch.jit.script(torch.nn.Linear(4, 2))
    torch.jit.save(module, str(tmp_path / "model.pt"))
    output = frameworks.load_native(tmp_path, None).predict(np.ones((3, 4)))
    assert np.asarray(output).shape == (3, 2)


def test_corrupt_model_file_is_a_load_error(tmp_path: Path) -> None:
    (tmp_path / "model.joblib").write_bytes(b"definitely not a pickle")
    with pytest.raises(ModelLoadError, match=r"cannot load sklearn model .*model\.joblib"):
        frameworks.load_native(tmp_path, None)
