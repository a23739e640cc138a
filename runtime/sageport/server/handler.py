"""One servable model: the user's hooks where given, the framework defaults elsewhere.

The request path is split into decode (``input_fn``), predict (``predict_fn``) and encode
(``output_fn``) so that the batcher can coalesce the predict step of concurrent requests.
All three are blocking and run on the server's model thread pool, never on the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sageport.server import codecs, frameworks
from sageport.server.errors import ModelInvocationError, ModelLoadError, PayloadError, ServerError
from sageport.server.usercode import UserHooks, load_user_code

log = logging.getLogger(__name__)


@dataclass
class RequestContext:
    """What a hook may want beyond the payload; passed to hooks that take a ``context`` argument.

    ``custom_attributes`` is the request's ``X-Amzn-SageMaker-Custom-Attributes``; a hook that
    sets ``response_custom_attributes`` has it returned in the same response header.
    """

    content_type: str | None
    accept: str
    custom_attributes: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    model_name: str = "model"
    response_custom_attributes: str | None = None


@dataclass(frozen=True)
class Reply:
    body: bytes
    content_type: str
    custom_attributes: str | None = None


def _as_reply_body(result: Any, accept: str) -> tuple[bytes, str]:
    """output_fn may return bytes, str, or (body, content_type) as the toolkit allows."""
    content_type = accept
    if isinstance(result, tuple) and len(result) == 2:
        result, content_type = result
    if isinstance(result, str):
        return result.encode(), str(content_type)
    if isinstance(result, bytes | bytearray | memoryview):
        return bytes(result), str(content_type)
    # A hook that returned a plain value: serialise it rather than fail the request.
    return codecs.encode(result, content_type if content_type in codecs.SUPPORTED else codecs.JSON), str(
        content_type
    )


class ModelHandler:
    def __init__(
        self,
        name: str,
        model: Any,
        hooks: UserHooks,
        default_accept: str,
        default_predict: Callable[[Any], Any] | None = None,
    ) -> None:
        self.name = name
        self.model = model
        self._default_predict = default_predict
        self.hooks = hooks
        self.default_accept = default_accept
        # Batching needs array-in / array-out semantics around predict; a transform_fn hides them.
        self.batchable = hooks.transform_fn is None

    def accept_for(self, accept_header: str | None) -> str:
        if self.hooks.output_fn is not None or self.hooks.transform_fn is not None:
            # The user's output_fn decides what it can produce; do not second-guess it.
            first = codecs.media_type(accept_header.split(",", 1)[0]) if accept_header else None
            return self.default_accept if first in (None, "*/*") else first
        return codecs.choose_accept(accept_header, self.default_accept)

    def decode(self, body: bytes, context: RequestContext) -> Any:
        if self.hooks.input_fn is None:
            return codecs.decode(body, context.content_type)
        try:
            return self.hooks.input_fn(body, context.content_type or codecs.JSON, context=context)
        except ServerError:
            raise
        except Exception as exc:
            raise PayloadError(f"input_fn rejected the payload: {type(exc).__name__}: {exc}") from exc

    def predict(self, data: Any, context: RequestContext | None) -> Any:
        try:
            if self.hooks.predict_fn is not None:
                return self.hooks.predict_fn(data, self.model, context=context)
            if self._default_predict is not None:
                return self._default_predict(data)
            if hasattr(self.model, "predict"):
                return self.model.predict(data)
            if callable(self.model):
                return self.model(data)
        except ServerError:
            raise
        except Exception as exc:
            raise ModelInvocationError(f"{type(exc).__name__}: {exc}") from exc
        raise ModelInvocationError("the model has no predict method and is not callable; define predict_fn")

    def encode(self, prediction: Any, context: RequestContext) -> Reply:
        try:
            if self.hooks.output_fn is not None:
                result = self.hooks.output_fn(prediction, context.accept, context=context)
                body, content_type = _as_reply_body(result, context.accept)
            else:
                body, content_type = codecs.encode(prediction, context.accept), context.accept
        except ServerError:
            raise
        except Exception as exc:
            raise ModelInvocationError(f"output_fn failed: {type(exc).__name__}: {exc}") from exc
        return Reply(body, content_type, context.response_custom_attributes)

    def invoke(self, body: bytes, context: RequestContext) -> Reply:
        """The whole request in one call: what a pool thread runs when batching is off."""
        if self.hooks.transform_fn is not None:
            try:
                result = self.hooks.transform_fn(
                    self.model, body, context.content_type or codecs.JSON, context.accept, context=context
                )
            except ServerError:
                raise
            except Exception as exc:
                raise ModelInvocationError(f"{type(exc).__name__}: {exc}") from exc
            reply_body, content_type = _as_reply_body(result, context.accept)
            return Reply(reply_body, content_type, context.response_custom_attributes)
        return self.encode(self.predict(self.decode(body, context), context), context)


def load_handler(
    name: str,
    model_dir: Path,
    *,
    framework: str | None,
    program: str,
    default_accept: str,
    install_requirements: bool = True,
    requirements_target: Path | None = None,
    code_dir: Path | None = None,
) -> ModelHandler:
    """Build the handler for ``model_dir`` (blocking: imports, pip, file reads); the user's code is
    in ``code_dir``, by default ``model_dir/code``."""
    if not model_dir.is_dir():
        raise ModelLoadError(f"model directory {str(model_dir)!r} does not exist")
    if code_dir is not None and not code_dir.is_dir():
        raise ModelLoadError(f"code directory {str(code_dir)!r} (SAGEMAKER_SUBMIT_DIRECTORY) does not exist")
    hooks = load_user_code(
        model_dir, program, install=install_requirements, target=requirements_target, code_dir=code_dir
    )
    if hooks.model_fn is not None:
        try:
            model = hooks.model_fn(str(model_dir), context=None)
        except Exception as exc:
            raise ModelLoadError(f"model_fn failed: {type(exc).__name__}: {exc}") from exc
        return ModelHandler(name, model, hooks, default_accept)
    native = frameworks.load_native(model_dir, framework)
    return ModelHandler(name, native.model, hooks, default_accept, default_predict=native.predict)
