from __future__ import annotations

from pathlib import Path

import pytest

from sageport.server.config import ConfigError, load_config, parse_size


def test_defaults_follow_the_sagemaker_contract() -> None:
    config = load_config([], {})
    assert config.port == 8080
    assert config.model_dir == Path("/opt/ml/model")
    assert not config.multi_model
    assert not config.batching.enabled


def test_serve_argument_flags_and_env_precedence() -> None:
    env = {"SAGEMAKER_BIND_TO_PORT": "9001", "SM_MODEL_DIR": "/env/model"}
    assert load_config(["serve"], env).port == 9001
    assert load_config(["serve"], env).model_dir == Path("/env/model")
    flags = load_config(["serve", "--port", "7000", "--model-dir", "/flag/model"], env)
    assert (flags.port, flags.model_dir) == (7000, Path("/flag/model"))


def test_multi_model_and_batching_settings() -> None:
    config = load_config(
        [],
        {
            "SAGEMAKER_MULTI_MODEL": "true",
            "SAGEPORT_MULTI_MODEL_MEMORY": "512Mi",
            "SAGEPORT_BATCHING": "1",
            "SAGEPORT_BATCH_MAX_SIZE": "64",
            "SAGEPORT_BATCH_MAX_WAIT_MS": "2",
        },
    )
    assert config.multi_model
    assert config.multi_model_memory_bytes == 512 * 2**20
    assert config.batching.enabled
    assert config.batching.max_batch_size == 64
    assert config.batching.max_wait_seconds == pytest.approx(0.002)


@pytest.mark.parametrize(
    ("raw", "expected"), [("1000", 1000), ("2Ki", 2048), ("1.5G", 1_500_000_000), ("1GiB", 2**30)]
)
def test_sizes(raw: str, expected: int) -> None:
    assert parse_size(raw) == expected


@pytest.mark.parametrize(
    "env",
    [
        {"SAGEMAKER_BIND_TO_PORT": "http"},
        {"SAGEPORT_MODEL_FRAMEWORK": "tensorflow"},
        {"SAGEMAKER_MULTI_MODEL": "maybe"},
        {"SAGEPORT_MULTI_MODEL_MEMORY": "lots"},
    ],
)
def test_bad_settings_are_reported(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        load_config([], env)


def test_model_threads_follow_the_cpu_quota_unless_set() -> None:
    assert load_config([], {}, cpus=1).model_threads == 3
    assert load_config([], {"SAGEPORT_MODEL_THREADS": "8"}, cpus=1).model_threads == 8


def test_script_mode_code_comes_from_a_local_submit_directory() -> None:
    assert load_config([], {}).code_dir is None  # <model>/code
    fetched = load_config([], {"SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/code", "SAGEMAKER_PROGRAM": "serve.py"})
    assert (fetched.code_dir, fetched.program) == (Path("/opt/ml/code"), "serve.py")
    assert load_config([], {"SAGEMAKER_SUBMIT_DIRECTORY": "file:///src/code"}).code_dir == Path("/src/code")
    with pytest.raises(
        ConfigError, match=r"operator fetches an S3 or HTTP sourcedir\.tar\.gz into /opt/ml/code"
    ):
        load_config([], {"SAGEMAKER_SUBMIT_DIRECTORY": "s3://bucket/sourcedir.tar.gz"})
