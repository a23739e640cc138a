from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.gateway.support import (
    ACCESS_KEY,
    SECRET_KEY,
    Process,
    free_port,
    runtime_client,
    start_backend,
    start_gateway,
)

LIMITED_KEY = "AKIDLIMITED"
LIMITED_SECRET = "limited-secret-value"


@pytest.fixture(scope="session")
def backends() -> Iterator[dict[str, Process]]:
    started = {name: start_backend(name) for name in ("b1", "b2", "b3")}
    started["loading"] = start_backend("loading", "--loading")
    yield started
    for process in started.values():
        process.stop()


def write_routes(path: Path, backends: dict[str, Process]) -> None:
    b1, b2, b3 = backends["b1"].url, backends["b2"].url, backends["b3"].url
    routes = {
        "endpoints": {
            "echo": {"variants": [{"name": "AllTraffic", "weight": 1.0, "backends": [b1]}]},
            "many": {"variants": [{"name": "AllTraffic", "backends": [b1, b2], "multiModel": True}]},
            "split": {
                "variants": [
                    {"name": "VariantA", "weight": 0.7, "backends": [b1]},
                    {"name": "VariantB", "weight": 0.3, "backends": [b2]},
                ]
            },
            "multi": {"variants": [{"name": "AllTraffic", "backends": [b1, b2, b3]}]},
            "loading": {"variants": [{"name": "AllTraffic", "backends": [backends["loading"].url]}]},
            "dead": {"variants": [{"name": "AllTraffic", "backends": [f"http://127.0.0.1:{free_port()}"]}]},
            "empty": {"variants": [{"name": "AllTraffic", "backends": []}]},
            "direct": {
                "variants": [
                    {"name": "AllTraffic", "backends": [b1], "containerHostnames": ["first", "second"]}
                ]
            },
        }
    }
    path.write_text(yaml.safe_dump(routes))


@pytest.fixture(scope="session")
def gateway_files(tmp_path_factory: pytest.TempPathFactory, backends: dict[str, Process]) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("gateway")
    routes = directory / "routes.yaml"
    write_routes(routes, backends)
    keys = directory / "keys.yaml"
    keys.write_text(
        yaml.safe_dump(
            {
                "keys": [
                    {"accessKeyId": ACCESS_KEY, "secretAccessKey": SECRET_KEY, "endpoints": ["*"]},
                    {"accessKeyId": LIMITED_KEY, "secretAccessKey": LIMITED_SECRET, "endpoints": ["echo"]},
                ]
            }
        )
    )
    return {"routes": routes, "keys": keys, "log": directory / "gateway.log"}


@pytest.fixture(scope="session")
def gateway(gateway_files: dict[str, Path]) -> Iterator[Process]:
    process = start_gateway(
        [
            "--routes",
            str(gateway_files["routes"]),
            "--keys",
            str(gateway_files["keys"]),
            "--model-timeout",
            "1.5",
        ],
        log_path=gateway_files["log"],
    )
    yield process
    process.stop()


@pytest.fixture
def client(gateway: Process):  # type: ignore[no-untyped-def]
    return runtime_client(gateway.url)
