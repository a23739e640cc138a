"""Reconcilers: resolve references, render, apply through the client adapter, compute status."""

from .endpoint import ChildRef, EndpointReconciler, Lookups, status_patch
from .resolve import Resolution, resolve_endpoint, validation_message

__all__ = [
    "ChildRef",
    "EndpointReconciler",
    "Lookups",
    "Resolution",
    "resolve_endpoint",
    "status_patch",
    "validation_message",
]
