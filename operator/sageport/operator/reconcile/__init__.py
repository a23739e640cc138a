"""The Endpoint path, in stages: resolve -> admit -> plan -> render -> apply (see endpoint.py).

Import the stage modules themselves: this package re-exports nothing, so importing a pure
stage never loads the Kubernetes client.
"""
