"""The local Kubernetes harness: upstream control-plane binaries as processes, KWOK fake nodes.

``python -m tests.cluster up | down | status | kubeconfig`` drives it by hand; the pytest
fixtures in ``tests/conftest.py`` drive it for a test session.
"""

from tests.cluster.control_plane import ClusterError, ClusterState, Layout, start, stop_cluster
from tests.cluster.handle import KubeCluster

__all__ = ["ClusterError", "ClusterState", "KubeCluster", "Layout", "start", "stop_cluster"]
