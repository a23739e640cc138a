"""Server settings from the command line and the environment (pure: no I/O)."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sageport.contract import (
    CONTAINER_PORT,
    MODEL_CACHE_ENV,
    MODEL_DIR,
    MODEL_DISK_BYTES_ENV,
    MODEL_PREFIX_ENV,
    MULTI_MODEL_ROOT,
    SageMakerEnv,
)

FRAMEWORKS = ("sklearn", "xgboost", "pytorch", "onnx")

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?)?B?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_BINARY_UNITS = {"ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


class ConfigError(ValueError):
    """A setting has a value the server cannot use."""


@dataclass(frozen=True)
class BatchingConfig:
    enabled: bool = False
    max_batch_size: int = 32
    max_wait_seconds: float = 0.005


@dataclass(frozen=True)
class ServerConfig:
    port: int = CONTAINER_PORT
    host: str = "0.0.0.0"
    model_dir: Path = Path(MODEL_DIR)
    model_name: str = "model"
    framework: str | None = None
    program: str = "inference.py"
    default_accept: str = "application/json"
    model_threads: int = 4
    install_requirements: bool = True
    requirements_target: Path | None = None
    multi_model: bool = False
    multi_model_root: Path = Path(MULTI_MODEL_ROOT)
    multi_model_memory_bytes: int | None = None
    # Multi-model endpoints: the S3 prefix TargetModel keys are under (models load on first call),
    # whether they stay cached (SageMaker's ModelCacheSetting), and how long a call waits for a load
    # before it is answered ModelNotReady (the load goes on).
    model_prefix: str | None = None
    model_cache: bool = True
    model_load_wait_seconds: float = 60.0
    model_disk_bytes: int | None = None
    batching: BatchingConfig = BatchingConfig()
    kserve_routes: bool = True
    log_level: str = "INFO"


def _model_cache(value: str | None) -> bool:
    if value in (None, "", "Enabled"):
        return True
    if value == "Disabled":
        return False
    raise ConfigError(f"{MODEL_CACHE_ENV} must be Enabled or Disabled, got {value!r}")


def parse_bool(value: str | None, default: bool = False) -> bool:
    if value is None or value.strip() == "":
        return default
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"not a boolean: {value!r}")


def parse_size(value: str) -> int:
    """Bytes from ``"536870912"``, ``"512Mi"``, ``"1.5G"`` or ``"2GiB"``."""
    match = _SIZE.match(value)
    if match is None:
        raise ConfigError(f"not a size: {value!r}")
    number, unit = match.groups()
    unit = (unit or "").lower()
    factor = _BINARY_UNITS.get(unit) or _UNITS.get(unit[:1], 1)
    return int(float(number) * factor)


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sageport-server",
        description="SageMaker-compatible model server (GET /ping, POST /invocations, KServe V1/V2).",
    )
    parser.add_argument(
        "command",
        nargs="?",
        default="serve",
        choices=["serve"],
        help="SageMaker runs containers with `serve`",
    )
    parser.add_argument(
        "--model-dir", help=f"model directory (else {SageMakerEnv.MODEL_DIR}, else {MODEL_DIR})"
    )
    parser.add_argument(
        "--port", type=int, help=f"HTTP port (else {SageMakerEnv.BIND_TO_PORT}, else {CONTAINER_PORT})"
    )
    parser.add_argument("--host", default=None, help="bind address (default 0.0.0.0)")
    return parser


def load_config(argv: Sequence[str], env: Mapping[str, str], cpus: int | None = None) -> ServerConfig:
    """The one place that reads settings; ``env`` is passed in so tests need no monkeypatching.

    ``cpus`` is what the container may use (its CPU quota), which sizes the model thread pool.
    """
    args = build_parser().parse_args(list(argv))
    port = args.port if args.port is not None else _int(env, SageMakerEnv.BIND_TO_PORT, CONTAINER_PORT)
    if not 0 < port < 65536:
        raise ConfigError(f"port out of range: {port}")
    framework = (env.get("SAGEPORT_MODEL_FRAMEWORK") or "").strip().lower() or None
    if framework is not None and framework not in FRAMEWORKS:
        raise ConfigError(
            f"SAGEPORT_MODEL_FRAMEWORK must be one of {', '.join(FRAMEWORKS)}, got {framework!r}"
        )
    memory = env.get("SAGEPORT_MULTI_MODEL_MEMORY")
    target = env.get("SAGEPORT_REQUIREMENTS_TARGET")
    return ServerConfig(
        port=port,
        host=args.host or env.get("SAGEPORT_BIND_HOST", "0.0.0.0"),
        model_dir=Path(args.model_dir or env.get(SageMakerEnv.MODEL_DIR) or MODEL_DIR),
        model_name=env.get("SAGEPORT_MODEL_NAME", "model"),
        framework=framework,
        program=env.get(SageMakerEnv.PROGRAM) or "inference.py",
        default_accept=env.get(SageMakerEnv.DEFAULT_INVOCATIONS_ACCEPT) or "application/json",
        model_threads=_int(env, "SAGEPORT_MODEL_THREADS", min(32, (cpus or os.cpu_count() or 1) + 2)),
        install_requirements=parse_bool(env.get("SAGEPORT_INSTALL_REQUIREMENTS"), default=True),
        requirements_target=Path(target) if target else None,
        multi_model=parse_bool(env.get(SageMakerEnv.MULTI_MODEL)),
        multi_model_root=Path(env.get("SAGEPORT_MULTI_MODEL_ROOT") or MULTI_MODEL_ROOT),
        multi_model_memory_bytes=parse_size(memory) if memory else None,
        model_prefix=env.get(MODEL_PREFIX_ENV) or None,
        model_cache=_model_cache(env.get(MODEL_CACHE_ENV)),
        model_load_wait_seconds=float(env.get("SAGEPORT_MODEL_LOAD_WAIT_SECONDS") or 60.0),
        model_disk_bytes=parse_size(disk) if (disk := env.get(MODEL_DISK_BYTES_ENV)) else None,
        batching=BatchingConfig(
            enabled=parse_bool(env.get("SAGEPORT_BATCHING")),
            max_batch_size=_int(env, "SAGEPORT_BATCH_MAX_SIZE", 32),
            max_wait_seconds=_int(env, "SAGEPORT_BATCH_MAX_WAIT_MS", 5, minimum=0) / 1000.0,
        ),
        kserve_routes=parse_bool(env.get("SAGEPORT_KSERVE_ROUTES"), default=True),
        log_level=(
            env.get(SageMakerEnv.CONTAINER_LOG_LEVEL) or env.get("SAGEPORT_LOG_LEVEL") or "INFO"
        ).upper(),
    )
