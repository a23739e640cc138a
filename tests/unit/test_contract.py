"""Each shared name is defined once, in sageport.contract: no second literal of one of its values
appears in product code (operator/, runtime/), nor does anything outside tests/ import tests."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from enum import Enum
from pathlib import Path

from sageport import contract

REPO = Path(__file__).resolve().parents[2]
PRODUCT = [REPO / "operator" / "sageport", REPO / "runtime" / "sageport"]
CONTRACT = REPO / "runtime" / "sageport" / "contract.py"

# Values that are also ordinary words or field names in other roles, so a literal of them is not
# necessarily a copy: "http" (a URL scheme), the plural resource names ("endpoints" of an
# EndpointSlice, "models" of the multi-model API), and the statuses that SageMaker's variant and
# job status enums share with EndpointStatus, and the capture values TransformJob's JoinSource
# ("Input") and TransformJobStatus ("Stopped") share.
AMBIGUOUS: frozenset[object] = frozenset(
    {
        *contract.Plural,
        contract.CONTAINER_PORT_NAME,
        "Creating",
        "Updating",
        "Deleting",
        "Failed",
        "Input",
        "Stopped",
        "Completed",  # TransformJobStatus's, and an async notification's invocationStatus
        "password",  # the Redis Secret's key, and KEDA's redis-streams auth parameter
    }
)


def shared_values() -> set[object]:
    values: set[object] = set()
    for name, value in vars(contract).items():
        if name.startswith("_"):
            continue
        if isinstance(value, type) and issubclass(value, Enum):
            values |= {member.value for member in value}
        elif isinstance(value, str | int) and not isinstance(value, bool):
            values.add(value)
    return values - AMBIGUOUS


def _docstrings(tree: ast.Module) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def literals(path: Path) -> Iterator[tuple[int, object]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and id(node) not in skip and not isinstance(node.value, bool):
            yield node.lineno, node.value


def test_no_second_literal_of_a_contract_value_in_product_code() -> None:
    values = shared_values()
    assert {"sageport.io", 8080, "/opt/ml/model"} <= values  # the scan sees them
    copies = [
        f"{path.relative_to(REPO)}:{line}: {value!r}"
        for root in PRODUCT
        for path in sorted(root.rglob("*.py"))
        if path != CONTRACT
        for line, value in literals(path)
        if isinstance(value, str | int) and value in values
    ]
    assert copies == [], "use sageport.contract instead of these literals:\n" + "\n".join(copies)


def test_a_planted_copy_is_found(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text(
        '"""Docstrings may say sageport.io/endpoint."""\nPORT = 8080\nLABEL = "sageport.io/variant"\n'
    )
    assert [value for _, value in literals(planted) if value in shared_values()] == [
        8080,
        "sageport.io/variant",
    ]


def test_nothing_outside_tests_imports_tests() -> None:
    importers = []
    for root in ("operator", "runtime", "dev", "bench"):
        for path in sorted((REPO / root).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                names = (
                    [alias.name for alias in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else []
                )
                if any(name == "tests" or name.startswith("tests.") for name in names):
                    importers.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert importers == []
