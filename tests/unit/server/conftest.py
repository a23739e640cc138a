"""Real small models, trained once per session and saved the way users ship them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest


@pytest.fixture(scope="session")
def xgboost_dir(tmp_path_factory: pytest.TempPathFactory, iris: tuple[np.ndarray, np.ndarray]) -> Path:
    import xgboost

    features, labels = iris
    booster = xgboost.train(
        {"objective": "multi:softprob", "num_class": 3, "max_depth": 3, "nthread": 1},
        xgboost.DMatrix(features, label=labels),
        num_boost_round=10,
    )
    model_dir = tmp_path_factory.mktemp("xgboost")
    booster.save_model(str(model_dir / "xgboost-model.json"))
    return model_dir


@pytest.fixture(scope="session")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory, sklearn_model: Any) -> Path:
    from skl2onnx import to_onnx

    onnx_model = to_onnx(sklearn_model, np.zeros((1, 4), dtype=np.float32), options={"zipmap": False})
    model_dir = tmp_path_factory.mktemp("onnx")
    (model_dir / "model.onnx").write_bytes(onnx_model.SerializeToString())
    return model_dir
