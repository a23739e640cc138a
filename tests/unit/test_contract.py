"""Every name in sageport.contract is written once: a second literal of one of its values in
product code is how two components come to disagree on what a label, port or path is."""

from __future__ import annotations

import ast
from enum import Enum
from pathlib import Path

from sageport import contract
from tests.support.manifests import REPO

# The operator side is being moved onto the contract separately; add "operator" when it is done.
PRODUCT_ROOTS = ("runtime",)
CONTRACT_FILE = REPO / "runtime" / "sageport" / "contract.py"
# Values that are also ordinary words or field names elsewhere ("endpoints" of an EndpointSlice,
# "models" of the multi-model API's listing, an "http" URL scheme): only their uses as the
# contract's name are the contract's, which a literal search cannot tell apart.
AMBIGUOUS: frozenset[object] = frozenset({*contract.Plural, contract.CONTAINER_PORT_NAME})


def contract_values() -> dict[object, str]:
    values: dict[object, str] = {}
    for name, value in vars(contract).items():
        if name.startswith("_"):
            continue
        if isinstance(value, type) and issubclass(value, Enum):
            values.update({member.value: f"{name}.{member.name}" for member in value})
        elif isinstance(value, str | int) and not isinstance(value, bool):
            values[value] = name
    return {value: name for value, name in values.items() if value not in AMBIGUOUS}


def literals(path: Path) -> list[tuple[int, object]]:
    tree = ast.parse(path.read_text(), str(path))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str | int)
        and not isinstance(node.value, bool)
    ]


def test_no_second_literal_of_a_contract_name() -> None:
    values = contract_values()
    found = [
        f"{path.relative_to(REPO)}:{line}: {value!r} is contract.{values[value]}"
        for root in PRODUCT_ROOTS
        for path in sorted((REPO / root).rglob("*.py"))
        if path != CONTRACT_FILE
        for line, value in literals(path)
        if value in values
    ]
    assert not found, "\n".join(found)


def test_the_search_sees_what_it_looks_for() -> None:
    values = contract_values()
    assert {"/ping", "/invocations", 8080, "/opt/ml/model", "SAGEMAKER_BIND_TO_PORT", "InService"} <= set(
        values
    )
    assert "sageport.io/endpoint" in values
