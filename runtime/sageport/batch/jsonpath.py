"""The JSONPath subset SageMaker's InputFilter and OutputFilter accept (pure).

Supported (sagemaker-semantics.md §1.8): ``$``, ``$.name``, ``$.name.*``, ``$['a','b']``,
``$[1]``, ``$[1,3,5]``, ``$[-1]``, ``$[2:5]``, ``$[:5]``, ``$[2:]`` and mixes such as ``$[0,5:]``.
Like Jayway JsonPath (which SageMaker's guide points to): a path of single names and single
indexes gives the value itself; a wildcard, several indexes or a slice gives a list; several
names give an object of those keys. **Slice ends are exclusive** (Jayway's and Python's reading;
the guide's prose reads them as inclusive, its examples only use open-ended slices).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


class JsonPathError(ValueError):
    """The expression is outside the supported subset, or does not apply to the record."""


@dataclass(frozen=True)
class _Names:
    names: tuple[str, ...]


@dataclass(frozen=True)
class _Wildcard:
    pass


@dataclass(frozen=True)
class _Indexes:
    items: tuple[int | slice, ...]


_Step = _Names | _Wildcard | _Indexes

_NAME = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)")
_QUOTED = re.compile(r"\s*'((?:[^'\\]|\\.)*)'\s*")
_INDEX = re.compile(r"\s*(-?\d+)\s*")
_SLICE = re.compile(r"\s*(-?\d+)?\s*:\s*(-?\d+)?\s*")


@dataclass(frozen=True)
class JsonPath:
    expression: str
    steps: tuple[_Step, ...]

    @property
    def is_root(self) -> bool:
        return not self.steps

    def select(self, value: Any) -> Any:
        results, many = [value], False
        for step in self.steps:
            results, step_many = _apply(step, results, self.expression)
            many = many or step_many
        if many:
            return results
        return results[0]


def parse(expression: str) -> JsonPath:
    text = expression.strip()
    if not text.startswith("$"):
        raise JsonPathError(f"JSONPath {expression!r} must start with '$'")
    position = 1
    steps: list[_Step] = []
    while position < len(text):
        if text.startswith(".*", position):
            steps.append(_Wildcard())
            position += 2
            continue
        if text.startswith(".[", position):  # `$.field1.['child1','child2']` is accepted too
            position += 1
        if text[position] == ".":
            match = _NAME.match(text, position)
            if not match:
                raise JsonPathError(f"JSONPath {expression!r}: bad name at position {position}")
            steps.append(_Names((match.group(1),)))
            position = match.end()
            continue
        if text[position] == "[":
            end = text.find("]", position)
            if end < 0:
                raise JsonPathError(f"JSONPath {expression!r}: unclosed '['")
            steps.append(_bracket(text[position + 1 : end], expression))
            position = end + 1
            continue
        raise JsonPathError(f"JSONPath {expression!r}: unexpected {text[position]!r} at position {position}")
    return JsonPath(expression, tuple(steps))


def _bracket(inner: str, expression: str) -> _Step:
    if inner.strip() == "*":
        return _Wildcard()
    items = inner.split(",")
    if inner.lstrip().startswith("'"):
        names = []
        for item in items:
            match = _QUOTED.fullmatch(item)
            if not match:
                raise JsonPathError(f"JSONPath {expression!r}: bad name list [{inner}]")
            name = match.group(1)
            if "." in name:
                raise JsonPathError(
                    f"JSONPath {expression!r}: nested children inside brackets are not supported"
                )
            names.append(name.replace("\\'", "'"))
        return _Names(tuple(names))
    indexes: list[int | slice] = []
    for item in items:
        if match := _INDEX.fullmatch(item):
            indexes.append(int(match.group(1)))
        elif match := _SLICE.fullmatch(item):
            start, stop = (None if group is None else int(group) for group in match.groups())
            indexes.append(slice(start, stop))
        else:
            raise JsonPathError(f"JSONPath {expression!r}: bad index list [{inner}]")
    return _Indexes(tuple(indexes))


def _apply(step: _Step, values: list[Any], expression: str) -> tuple[list[Any], bool]:
    """The step applied to each current value; ``True`` when it may give several results."""
    out: list[Any] = []
    if isinstance(step, _Wildcard):
        for value in values:
            if isinstance(value, dict):
                out.extend(value.values())
            elif isinstance(value, list):
                out.extend(value)
            else:
                raise JsonPathError(f"JSONPath {expression!r}: '*' applied to a scalar")
        return out, True
    if isinstance(step, _Names):
        for value in values:
            if not isinstance(value, dict):
                raise JsonPathError(f"JSONPath {expression!r}: a name applied to a non-object")
            missing = [name for name in step.names if name not in value]
            if missing:
                raise JsonPathError(f"JSONPath {expression!r}: no key {missing[0]!r} in the record")
            if len(step.names) == 1:
                out.append(value[step.names[0]])
            else:
                out.append({name: value[name] for name in step.names})
        return out, False
    many = len(step.items) > 1 or isinstance(step.items[0], slice)
    for value in values:
        if not isinstance(value, list):
            raise JsonPathError(f"JSONPath {expression!r}: an index applied to a non-array")
        for item in step.items:
            if isinstance(item, slice):
                out.extend(value[item])
            elif -len(value) <= item < len(value):
                out.append(value[item])
            else:
                raise JsonPathError(
                    f"JSONPath {expression!r}: index {item} is outside a record of {len(value)} fields"
                )
    return out, many
