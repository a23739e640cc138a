"""The SageMaker Runtime API front door.

Pure core (no I/O, unit-tested): ``invocation`` (paths, headers, limits), ``routing`` (variant
by weight, instance by least outstanding requests), ``errors`` (the Runtime API's own error
shapes: ModelError, ModelNotReadyException...), ``kubestate`` (Kubernetes objects to routes and
keys), ``config`` (standalone files).
Shell: ``app`` (the request flow), ``auth`` (what a key or token may invoke), ``kube`` (watches,
token and access reviews), ``metrics``, ``logs``, ``main`` (CLI).
The HTTP server, upstream pool, SigV4, event stream and AWS error shapes are ``sageport.net``.
"""
