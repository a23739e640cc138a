"""Asynchronous inference: the request record shared by gateway and agent, and the agent sidecar."""
