"""Errors the server turns into HTTP status codes (the mapping lives on the classes)."""

from __future__ import annotations


class ServerError(Exception):
    """Base: ``status`` is the HTTP status code the client receives, the message the body."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PayloadError(ServerError):
    """The request body cannot be decoded as its Content-Type says."""

    status = 400


class UnsupportedContentTypeError(ServerError):
    status = 415


class UnsupportedAcceptError(ServerError):
    status = 406


class ModelInvocationError(ServerError):
    """The model (or the user's hooks) raised while handling a request."""

    status = 500


class ModelLoadError(ServerError):
    """The model directory cannot be turned into a servable model."""

    status = 500


class ModelNotLoadedError(ServerError):
    status = 404


class ModelNotReadyError(ServerError):
    """Single-model mode: the model is still loading, or failed to load (see /ping)."""

    status = 503


class ModelAlreadyLoadedError(ServerError):
    status = 409


class InsufficientMemoryError(ServerError):
    """Multi-model mode: the model does not fit in the memory budget even after eviction."""

    status = 507


class TargetModelNotFoundError(ServerError):
    """Multi-model endpoints: no object at the prefix + TargetModel (SageMaker: a ValidationError).
    Its class name is the contract's TARGET_MODEL_MISSING_ERROR, which the gateway recognises."""

    status = 400
