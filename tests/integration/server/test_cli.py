"""The command line itself: bad settings stop the server with a message, not a traceback."""

from __future__ import annotations

import os
import subprocess

import pytest

from .conftest import REPO, SERVER


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["serve", "--port", "70000"], {}, "port out of range: 70000"),
        (["serve"], {"SAGEPORT_MODEL_FRAMEWORK": "tensorflow"}, "SAGEPORT_MODEL_FRAMEWORK must be one of"),
        (["train"], {}, "invalid choice: 'train'"),
    ],
)
def test_bad_settings_exit_with_status_2(args: list[str], env: dict[str, str], message: str) -> None:
    environment = {**os.environ, "PYTHONPATH": str(REPO / "runtime"), **env}
    done = subprocess.run([*SERVER, *args], env=environment, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
