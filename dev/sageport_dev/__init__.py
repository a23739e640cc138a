"""The local Kubernetes harness: upstream control-plane binaries as processes, KWOK fake nodes.

``python -m sageport_dev up | down | status | kubeconfig`` drives it by hand; the pytest
fixtures in ``tests/conftest.py`` drive it for a test session. Modules:

- ``build``: builds and caches the pinned binaries (Go module proxy, never rebuilt once cached)
- ``control_plane``: ``start`` / ``stop_cluster`` / ``health`` of one cluster in a state directory
- ``handle``: ``KubeCluster``, what a test holds (kubeconfig, ``kubectl()``, ``api_client()``)
- ``nodes`` + ``nodes.yaml``: the declarative fake-node set; ``kwok-stages.yaml``: kwok's lifecycle
"""
