"""Pure builders: resolved spec in, child manifests out. No I/O, no clock, no kopf."""

from .names import child_name, dns_label
from .variant import RenderSettings, ResolvedVariant, variant_children

__all__ = ["RenderSettings", "ResolvedVariant", "child_name", "dns_label", "variant_children"]
