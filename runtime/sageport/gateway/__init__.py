"""The SageMaker Runtime API front door.

Pure core (no I/O, unit-tested): ``invocation`` (paths, headers, limits), ``routing`` (variant
by weight, instance by least outstanding requests), ``sigv4`` (signature check), ``errors``
(SageMaker error shapes), ``eventstream`` (response-stream frames), ``kubestate`` (Kubernetes
objects to routes and keys), ``config`` (standalone files).
Shell: ``httpserver`` (client side), ``upstream`` (model side), ``app`` (the request flow),
``auth``, ``kube`` (watches, token and access reviews), ``metrics``, ``logs``, ``main`` (CLI).
"""
