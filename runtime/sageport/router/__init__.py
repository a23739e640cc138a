"""The pod sidecar of multi-container variants: routes Direct invocations by
TargetContainerHostname to the container's port (raw bytes, no re-encoding), answers the pod's
``/ping`` for all its containers, and counts per-container metrics."""
