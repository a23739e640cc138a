"""KServe V1 and V2 (Open Inference Protocol) routes, built with the kserve SDK.

This is the only module that imports kserve, and it does so lazily, in a worker thread,
after the model is loaded: ``import kserve`` takes seconds and parses ``sys.argv``, and
neither should delay the first ``/ping`` of a pod scaling from zero. Predictions made
through these routes go through the same thread pool and batcher as ``/invocations``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from sageport.server.codecs import to_plain
from sageport.server.errors import ServerError

log = logging.getLogger(__name__)

Predict = Callable[[str, Any], Awaitable[Any]]
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]

_import_lock = threading.Lock()


def _import_kserve() -> Any:
    """Import kserve with an empty argv, so its import-time argparse sees none of our flags."""
    with _import_lock:
        saved = sys.argv
        sys.argv = [saved[0] if saved else "sageport-server"]
        try:
            import kserve
        finally:
            sys.argv = saved
        return kserve


class KServeRoutes:
    """Builds (once) and serves the kserve FastAPI app; tracks which models it exposes."""

    def __init__(self, predict: Predict) -> None:
        self._predict = predict
        self._app: ASGIApp | None = None
        self._building: asyncio.Task[ASGIApp] | None = None
        self._repository: Any = None
        self._model_class: Any = None
        self._wanted: set[str] = set()

    @property
    def ready(self) -> bool:
        return self._app is not None

    def start(self) -> asyncio.Task[ASGIApp]:
        if self._building is None:
            self._building = asyncio.get_running_loop().create_task(self._build())
        return self._building

    async def app(self) -> ASGIApp:
        if self._app is not None:
            return self._app
        return await self.start()

    def register(self, name: str) -> None:
        self._wanted.add(name)
        if self._repository is not None:
            self._repository.update(self._model_class(name, self._predict))

    def unregister(self, name: str) -> None:
        self._wanted.discard(name)
        if self._repository is not None and self._repository.get_model(name) is not None:
            del self._repository.models[name]

    async def _build(self) -> ASGIApp:
        loop = asyncio.get_running_loop()
        kserve = await loop.run_in_executor(None, _import_kserve)
        app, repository, model_class = await loop.run_in_executor(None, _build_app, kserve)
        self._repository, self._model_class = repository, model_class
        for name in self._wanted:
            repository.update(model_class(name, self._predict))
        self._app = app
        log.info("KServe V1/V2 routes ready")
        return app


def _build_app(kserve: Any) -> tuple[ASGIApp, Any, Any]:
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from kserve import errors
    from kserve.protocol.dataplane import DataPlane
    from kserve.protocol.model_repository_extension import ModelRepositoryExtension
    from kserve.protocol.rest.v1_endpoints import register_v1_endpoints
    from kserve.protocol.rest.v2_endpoints import register_v2_endpoints
    from kserve.utils.numpy_codec import from_np_dtype

    class SageportModel(kserve.Model):  # type: ignore[misc]
        """A kserve model whose predict defers to the server's shared prediction path."""

        def __init__(self, name: str, predict: Predict) -> None:
            super().__init__(name)
            self._shared_predict = predict
            self.ready = True

        async def predict(
            self, payload: Any, headers: dict[str, str] | None = None, response_headers: Any = None
        ) -> Any:
            if isinstance(payload, kserve.InferRequest):
                if not payload.inputs:
                    raise errors.InvalidInput("the request has no inputs")
                try:
                    data = payload.inputs[0].as_numpy()
                except (ValueError, TypeError) as exc:  # data that does not fit its shape or datatype
                    raise errors.InvalidInput(f"input {payload.inputs[0].name!r}: {exc}") from exc
                prediction = np.asarray(await self._shared_predict(self.name, data))
                output = kserve.InferOutput(
                    name="output-0", shape=list(prediction.shape), datatype=from_np_dtype(prediction.dtype)
                )
                output.set_data_from_numpy(prediction, binary_data=False)
                return kserve.InferResponse(
                    response_id=payload.id or str(uuid.uuid4()), model_name=self.name, infer_outputs=[output]
                )
            if isinstance(payload, bytes | str):
                # kserve hands over the raw body when the Content-Type is not JSON (curl's default).
                try:
                    payload = json.loads(payload)
                except ValueError as exc:
                    raise errors.InvalidInput(f"body is not JSON: {exc}") from exc
            instances = payload.get("instances", payload.get("inputs")) if isinstance(payload, dict) else None
            if instances is None:
                raise errors.InvalidInput('expected a JSON object with "instances"')
            try:
                data = np.asarray(instances)
            except ValueError as exc:
                raise errors.InvalidInput(f"instances are not rectangular: {exc}") from exc
            return {"predictions": to_plain(await self._shared_predict(self.name, data))}

    repository = kserve.ModelRepository()
    dataplane = DataPlane(model_registry=repository)
    extension = ModelRepositoryExtension(model_registry=repository)
    app = FastAPI(title="sageport KServe routes", docs_url=None, redoc_url=None, openapi_url=None)
    register_v1_endpoints(app, dataplane, extension)
    register_v2_endpoints(app, dataplane, extension)
    for exception, handler in (
        (errors.InvalidInput, errors.invalid_input_handler),
        (errors.InferenceError, errors.inference_error_handler),
        (errors.ModelNotFound, errors.model_not_found_handler),
        (errors.ModelNotReady, errors.model_not_ready_handler),
        (NotImplementedError, errors.not_implemented_error_handler),
        (errors.UnsupportedProtocol, errors.unsupported_protocol_error_handler),
        (errors.ServerNotReady, errors.server_not_ready_handler),
        (errors.ServerNotLive, errors.server_not_live_handler),
        (Exception, errors.generic_exception_handler),
    ):
        app.add_exception_handler(exception, handler)

    async def server_error_handler(_request: Any, exc: Exception) -> Any:
        status = exc.status if isinstance(exc, ServerError) else 500
        return JSONResponse(status_code=status, content={"error": str(exc)})

    app.add_exception_handler(ServerError, server_error_handler)
    return app, repository, SageportModel
