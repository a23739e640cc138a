"""Pure builders: a planned variant shape in, child manifests out. No I/O, no clock, no kopf.

One module per child kind; :func:`variant_children` puts a variant's together in apply order.
"""

from __future__ import annotations

from collections.abc import Callable

from .deployment import deployment
from .hpa import horizontal_pod_autoscaler
from .keda import queue_scaled_object, scaled_object, tracking_scaled_object
from .names import child_name, dns_label
from .pdb import pod_disruption_budget
from .service import service
from .shape import Autoscaler, Manifest, RenderSettings, VariantShape

# The builder of each kind of autoscaler the plan can choose.
AUTOSCALERS: dict[Autoscaler, Callable[[VariantShape], list[Manifest]]] = {
    Autoscaler.NONE: lambda _shape: [],
    Autoscaler.HPA: horizontal_pod_autoscaler,
    Autoscaler.KEDA: scaled_object,
    Autoscaler.KEDA_QUEUE: queue_scaled_object,
    Autoscaler.KEDA_TARGET: tracking_scaled_object,
}


def variant_children(shape: VariantShape, settings: RenderSettings) -> list[Manifest]:
    """Every child object of the variant, in apply order."""
    children = [deployment(shape, settings)]
    children += [service(shape, planned) for planned in shape.services]
    children.append(pod_disruption_budget(shape))
    children += AUTOSCALERS[shape.autoscaler](shape)
    return children


__all__ = ["Manifest", "RenderSettings", "VariantShape", "child_name", "dns_label", "variant_children"]
