"""Namespaces: their Pod Security enforce label, which decides whether a Model may run as root
(sageport.operator.pod_security). When the label changes, the Models and Endpoints in the
namespace are checked again, so relabelling a namespace is all a user does to fix the refusal."""

from __future__ import annotations

from typing import Any

import kopf

from sageport.contract import POD_SECURITY_ENFORCE_LABEL
from sageport.operator.handlers.indexes import values
from sageport.operator.handlers.references import reconcile_endpoints, write_model_status


@kopf.index("", "v1", "namespaces")
def namespace_pod_security(name: str, labels: kopf.Labels, **_: Any) -> dict[Any, Any]:
    return {name: labels.get(POD_SECURITY_ENFORCE_LABEL)}


@kopf.on.event("", "v1", "namespaces")
async def namespace_event(
    type: str,  # noqa: A002
    name: str,
    labels: kopf.Labels,
    memo: kopf.Memo,
    **indexes: Any,
) -> None:
    level = None if type == "DELETED" else labels.get(POD_SECURITY_ENFORCE_LABEL)
    key = ("namespaces", name)
    changed = key in memo.generations and memo.generations[key] != level
    memo.generations[key] = level
    if not changed or type is None:  # at start-up every Model and Endpoint is looked at anyway
        return
    for ns, model in [key for key in indexes["model_index"] if key[0] == name]:
        for body in values(indexes["model_index"], (ns, model)):
            await write_model_status(body, memo, level)
    await reconcile_endpoints([key for key in indexes["endpoint_index"] if key[0] == name], memo, indexes)
