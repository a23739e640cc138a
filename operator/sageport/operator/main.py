"""``sageport-operator``: run the kopf operator.

With no arguments it watches all namespaces, using the in-cluster config inside a pod and
``$KUBECONFIG`` (or ~/.kube/config) elsewhere.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

import kopf

from sageport.contract import MANAGED_BY


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=MANAGED_BY, description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument(
        "-n", "--namespace", action="append", default=[], help="watch only these (repeatable)"
    )
    parser.add_argument("--liveness", default="http://0.0.0.0:8081/healthz", help="liveness endpoint URL")
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    kopf.configure(verbose=args.verbose, log_format=kopf.LogFormat.PLAIN)
    if not args.verbose:  # one "handler succeeded" line per watch event is noise at scale
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)

    import sageport.operator.handlers  # noqa: F401 - registers the handlers with kopf

    asyncio.run(
        kopf.operator(
            standalone=True,
            clusterwide=not args.namespace,
            namespaces=args.namespace,
            liveness_endpoint=args.liveness or None,
        )
    )


if __name__ == "__main__":
    main()
