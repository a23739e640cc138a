"""The inference-toolkit hooks, alone and mixed with defaults, on real models."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest

from sageport.server.errors import ModelInvocationError, ModelLoadError, PayloadError
from sageport.server.handler import ModelHandler, RequestContext, load_handler


def _load(model_dir: Path) -> ModelHandler:
    return load_handler(
        "m", model_dir, framework=None, program="inference.py", default_accept="application/json"
    )


def _context(
    handler: ModelHandler, content_type: str = "application/json", accept: str | None = None
) -> RequestContext:
    return RequestContext(
        content_type=content_type, accept=handler.accept_for(accept), custom_attributes="trace=1"
    )


def _with_code(tmp_path: Path, model_dir: Path, source: str, requirements: str | None = None) -> Path:
    target = tmp_path / "model"
    shutil.copytree(model_dir, target)
    (target / "code").mkdir()
    (target / "code" / "inference.py").write_text(textwrap.dedent(source))
    if requirements is not None:
        (target / "code" / "requirements.txt").write_text(requirements)
    return target


def test_defaults_only(sklearn_dir: Path) -> None:
    handler = _load(sklearn_dir)
    reply = handler.invoke(b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n", _context(handler, "text/csv", "text/csv"))
    assert reply.content_type == "text/csv"
    assert reply.body == b"0\n2\n"
    assert reply.custom_attributes is None, "custom attributes are returned only when the model sets them"


def test_all_four_hooks_with_context(tmp_path: Path, sklearn_dir: Path) -> None:
    model_dir = _with_code(
        tmp_path,
        sklearn_dir,
        """
        import json, joblib, os

        def model_fn(model_dir):
            return {"clf": joblib.load(os.path.join(model_dir, "model.joblib")), "dir": model_dir}

        def input_fn(body, content_type, context):
            assert content_type == "application/json"
            return json.loads(body)["rows"]

        def predict_fn(rows, model, context):
            return {"labels": model["clf"].predict(rows).tolist(), "attrs": context.custom_attributes}

        def output_fn(prediction, accept, context):
            context.response_custom_attributes = "seen=" + (prediction["attrs"] or "")
            return json.dumps(prediction), "application/vnd.custom+json"
        """,
    )
    handler = _load(model_dir)
    reply = handler.invoke(json.dumps({"rows": [[6.7, 3.0, 5.2, 2.3]]}).encode(), _context(handler))
    assert json.loads(reply.body) == {"labels": [2], "attrs": "trace=1"}
    assert reply.content_type == "application/vnd.custom+json"
    assert reply.custom_attributes == "seen=trace=1"


def test_a_subset_of_hooks_falls_back_to_defaults(tmp_path: Path, sklearn_dir: Path) -> None:
    model_dir = _with_code(
        tmp_path,
        sklearn_dir,
        """
        def predict_fn(data, model):
            return model.predict_proba(data)
        """,
    )
    handler = _load(model_dir)
    probabilities = json.loads(handler.invoke(b"[[5.1, 3.5, 1.4, 0.2]]", _context(handler)).body)
    assert len(probabilities[0]) == 3
    assert abs(sum(probabilities[0]) - 1) < 1e-6


def test_transform_fn_replaces_the_pipeline(tmp_path: Path, sklearn_dir: Path) -> None:
    model_dir = _with_code(
        tmp_path,
        sklearn_dir,
        """
        def transform_fn(model, body, content_type, accept):
            return b"rows=" + str(body.count(b"\\n")).encode(), "text/plain"
        """,
    )
    handler = _load(model_dir)
    reply = handler.invoke(b"1\n2\n", _context(handler, "text/plain", "text/plain"))
    assert (reply.body, reply.content_type) == (b"rows=2", "text/plain")
    assert not handler.batchable


def test_hook_errors_map_to_payload_and_model_errors(tmp_path: Path, sklearn_dir: Path) -> None:
    model_dir = _with_code(
        tmp_path,
        sklearn_dir,
        """
        def input_fn(body, content_type):
            if body == b"bad":
                raise ValueError("need numbers")
            return [[1.0, 2.0, 3.0, 4.0]]

        def predict_fn(data, model):
            raise RuntimeError("GPU on fire")
        """,
    )
    handler = _load(model_dir)
    with pytest.raises(PayloadError, match="need numbers"):
        handler.invoke(b"bad", _context(handler))
    with pytest.raises(ModelInvocationError, match="GPU on fire"):
        handler.invoke(b"ok", _context(handler))


def test_wrong_feature_count_is_a_model_error(sklearn_dir: Path) -> None:
    handler = _load(sklearn_dir)
    with pytest.raises(ModelInvocationError, match="features"):
        handler.invoke(b"[[1, 2]]", _context(handler))


def test_broken_user_code_is_a_load_error(tmp_path: Path, sklearn_dir: Path) -> None:
    model_dir = _with_code(tmp_path, sklearn_dir, "import not_a_module_anyone_has\n")
    with pytest.raises(ModelLoadError, match="not_a_module_anyone_has"):
        _load(model_dir)


def test_model_fn_alone_needs_no_model_file(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "inference.py").write_text(
        "import numpy as np\n"
        "class Doubler:\n"
        "    def predict(self, x):\n"
        "        return np.asarray(x) * 2\n"
        "def model_fn(model_dir):\n"
        "    return Doubler()\n"
    )
    handler = _load(tmp_path)
    assert handler.invoke(b"[[1, 2]]", _context(handler)).body == b"[[2,4]]"
    np.testing.assert_array_equal(handler.predict(np.array([[3]]), None), [[6]])


def test_script_mode_code_from_its_own_directory(tmp_path: Path, sklearn_dir: Path) -> None:
    """SageMaker's framework containers: SAGEMAKER_SUBMIT_DIRECTORY (the unpacked
    sourcedir.tar.gz, /opt/ml/code in pods) holds SAGEMAKER_PROGRAM and its requirements."""
    code = tmp_path / "sourcedir"
    code.mkdir()
    (code / "helper.py").write_text("SCALE = 10\n")
    (code / "serve.py").write_text(
        textwrap.dedent(
            """
            import helper

            def predict_fn(data, model):
                return [int(p) * helper.SCALE for p in model.predict(data)]
            """
        )
    )
    handler = load_handler("m", sklearn_dir, framework=None, program="serve.py", default_accept="application/json",
                           code_dir=code)  # fmt: skip
    reply = handler.invoke(b"5.1,3.5,1.4,0.2", _context(handler, "text/csv"))
    assert json.loads(reply.body) == [0]  # class 0 times 10
    with pytest.raises(ModelLoadError, match="SAGEMAKER_SUBMIT_DIRECTORY"):
        load_handler("m", sklearn_dir, framework=None, program="serve.py", default_accept="application/json",
                     code_dir=tmp_path / "missing")  # fmt: skip
