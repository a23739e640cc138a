"""Load the YAML manifests users apply (examples/, ACK samples) for tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
ACK_SAMPLES = REPO / "tests" / "data" / "ack" / "samples.yaml"


def load_documents(path: Path) -> list[dict[str, Any]]:
    """Every document of a YAML file, or of every YAML file under a directory, in name order."""
    files = sorted(path.rglob("*.yaml")) if path.is_dir() else [path]
    return [doc for file in files for doc in yaml.safe_load_all(file.read_text()) if doc]


def example_dirs() -> Iterator[Path]:
    return (p for p in sorted(EXAMPLES.iterdir()) if p.is_dir())
