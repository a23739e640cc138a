"""Network pieces every sageport service that speaks AWS or proxies to models shares.

``httpserver`` (HTTP/1.1 server on httptools), ``upstream`` (keep-alive client pool to model
instances), ``sigv4`` (signature check, pure), ``auth`` (SigV4 against a key store, bearer
tokens), ``eventstream`` (AWS event-stream frames), ``awserrors`` (AWS JSON error shapes).
The gateway uses them today; the router sidecar, activator, async agent and control-plane API
are meant to. Nothing here knows the gateway, the model server or the operator.
"""
