"""The one Kubernetes client configuration every sageport component uses (operator, gateway...).

The official ``kubernetes`` client is only partly annotated; this module and the adapters that
call it are the places that touch it.
"""

from __future__ import annotations

from pathlib import Path

from kubernetes import client, config


def load_api_client(kubeconfig: Path | None = None, *, pool_size: int) -> client.ApiClient:
    """An API client from ``kubeconfig`` if given; else in-cluster config when running in a pod,
    else $KUBECONFIG / ~/.kube/config. ``pool_size`` connections are kept alive, as many as the
    caller runs calls at once."""
    configuration = client.Configuration()
    if kubeconfig is not None:
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    else:
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException:
            config.load_kube_config(client_configuration=configuration)
    configuration.connection_pool_maxsize = pool_size
    return client.ApiClient(configuration)
