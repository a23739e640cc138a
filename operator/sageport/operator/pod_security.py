"""Root opt-out (pure): a Model whose image must run as root, and the namespace that allows it.

Every container sageport renders has ``runAsNonRoot: true`` (Pod Security ``restricted``). Images
written for SageMaker often run as root (AWS's own serving containers do: Multi Model Server writes
``/etc/sagemaker-mms.properties``). The Model annotation :data:`~sageport.contract.ANNOTATION_RUN_AS_ROOT`
``"true"`` lets its model containers run as root, where the namespace's Pod Security allows root
(``baseline`` or ``privileged``). In a ``restricted`` namespace the pods would never be admitted, so
the Model and its Endpoints are ``Ready=False`` with reason :data:`REASON` and what to change,
instead of a ReplicaSet failing to create pods.
"""

from __future__ import annotations

from collections.abc import Mapping

from sageport.contract import ANNOTATION_RUN_AS_ROOT, POD_SECURITY_ENFORCE_LABEL
from sageport.operator.status import Problem

REASON = "RunAsRootNotAllowed"
INVALID = "InvalidSpec"
# Levels that refuse containers running as root. Without the label (or with an unknown one)
# Kubernetes applies the cluster's default, privileged unless its admission config says otherwise.
REFUSING_LEVELS = frozenset({"restricted"})


def runs_as_root(annotations: Mapping[str, str] | None) -> bool | str:
    """Whether a Model's annotations ask for root; a message when the annotation is not a boolean."""
    value = (annotations or {}).get(ANNOTATION_RUN_AS_ROOT)
    if value is None:
        return False
    if value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return f'annotation {ANNOTATION_RUN_AS_ROOT}={value!r} must be "true" or "false"'


def root_problem(
    model: str, annotations: Mapping[str, str] | None, namespace: str, enforce: str | None
) -> Problem | None:
    """Why Model ``model`` (with ``annotations``) cannot run in ``namespace``, whose
    :data:`~sageport.contract.POD_SECURITY_ENFORCE_LABEL` is ``enforce``; None when it can."""
    root = runs_as_root(annotations)
    if isinstance(root, str):
        return Problem(INVALID, f"Model {model}: {root}.", terminal=True)
    if not root or enforce not in REFUSING_LEVELS:
        return None
    return Problem(
        REASON,
        f"Model {model} has annotation {ANNOTATION_RUN_AS_ROOT}=true (its containers run as root), but "
        f"namespace {namespace} enforces Pod Security {enforce!r} (label {POD_SECURITY_ENFORCE_LABEL}), "
        f"which refuses root containers. Allow it with `kubectl label namespace {namespace} "
        f"{POD_SECURITY_ENFORCE_LABEL}=baseline --overwrite`, or deploy to a baseline namespace, or "
        f"remove the annotation and use an image that runs as a non-root user.",
        terminal=True,
    )
