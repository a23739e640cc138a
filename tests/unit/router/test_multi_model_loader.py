"""The router playing SageMaker's platform for a multi-model container that is not sageport's
server: download a TargetModel once, LoadModel it once however many calls wait, invoke it at
/models/<name>/invoke; load again when the container lost it; SageMaker's answer for a TargetModel
with no object; the container's own refusal passed on, naming it. The container is a stub speaking
the multi-model container API (as Multi Model Server does, which the e2e test runs)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from sageport.contract import FAILED_CONTAINER_HEADER, TARGET_MODEL_HEADER, multi_model_id
from sageport.net.httpserver import Request, Response
from sageport.router.app import Router, RouterSettings
from sageport.router.loader import ModelLoader
from sageport.router.metrics import RouterMetrics
from sageport.router.routing import Container
from sageport.storage.fetch import ArtifactMissingError

PREFIX = "s3://bucket/mme/"


@dataclass
class MultiModelContainer:
    """LoadModel (POST /models: 200, 409 when loaded) and InvokeModel (404 when not loaded)."""

    refuse_load: int | None = None
    loaded: dict[str, str] = field(default_factory=dict)  # name -> url
    load_calls: list[str] = field(default_factory=list)
    port: int = 0
    runner: web.AppRunner | None = None

    async def start(self) -> None:
        async def load(request: web.Request) -> web.Response:
            document = await request.json()
            self.load_calls.append(document["model_name"])
            await asyncio.sleep(0.05)  # a load takes a while: calls pile up meanwhile
            if self.refuse_load:
                return web.json_response(
                    {"code": self.refuse_load, "message": "no room"}, status=self.refuse_load
                )
            if document["model_name"] in self.loaded:
                return web.json_response({"code": 409, "message": "already registered"}, status=409)
            self.loaded[document["model_name"]] = document["url"]
            return web.json_response({"status": "Workers scaled"})

        async def invoke(request: web.Request) -> web.Response:
            name = request.match_info["name"]
            if name not in self.loaded:
                return web.json_response({"code": 404, "message": f"Model not found: {name}"}, status=404)
            model = json.loads((Path(self.loaded[name]) / "model.json").read_text())
            return web.json_response([model["value"] + float(await request.text())])

        async def ping(_: web.Request) -> web.Response:
            return web.json_response({"status": "Healthy"})

        app = web.Application()
        app.router.add_get("/ping", ping)
        app.router.add_post("/models", load)
        app.router.add_post("/models/{name}/invoke", invoke)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


class Bucket:
    """Artifacts by URL; fetch unpacks one (model.json) into the destination, counting fetches."""

    def __init__(self, models: dict[str, float]) -> None:
        self.models = {PREFIX + key: value for key, value in models.items()}
        self.fetched: list[str] = []

    def fetch(self, url: str, destination: Path) -> Path:
        if url not in self.models:
            raise ArtifactMissingError(f"no object at {url}")
        self.fetched.append(url)
        destination.mkdir(parents=True)
        (destination / "model.json").write_text(json.dumps({"value": self.models[url]}))
        return destination


@pytest.fixture
async def container() -> AsyncIterator[MultiModelContainer]:
    made = MultiModelContainer()
    await made.start()
    yield made
    assert made.runner is not None
    await made.runner.cleanup()


async def _router(container: MultiModelContainer, bucket: Bucket, root: Path) -> Router:
    router = Router(
        {"model": Container("model", container.port)},
        RouterMetrics(CollectorRegistry(), "ep", "AllTraffic"),
        RouterSettings(),
    )
    router.loader = ModelLoader(PREFIX, root, bucket.fetch, router.load_model, None)
    await router.start()
    return router


async def _invoke(router: Router, target: str, body: bytes = b"1") -> Response:
    headers = {TARGET_MODEL_HEADER.lower(): target, "content-type": "application/json"}
    path = f"/models/{multi_model_id(target)}/invoke"
    request = Request("POST", path, "", headers, {k: [v] for k, v in headers.items()}, "1.1", body)
    answer = await router.handle(request, None)  # type: ignore[arg-type]
    assert answer is not None
    return answer


async def test_a_model_is_downloaded_and_loaded_once_then_invoked(
    container: MultiModelContainer, tmp_path: Path
) -> None:
    bucket = Bucket({"team-a/m1.tar.gz": 10.0, "m2.tar.gz": 20.0})
    router = await _router(container, bucket, tmp_path)
    answers = await asyncio.gather(*(_invoke(router, "team-a/m1.tar.gz", b"%d" % i) for i in range(20)))
    assert [json.loads(a.body) for a in answers] == [[10.0 + i] for i in range(20)]
    assert bucket.fetched == [PREFIX + "team-a/m1.tar.gz"]  # 20 first calls, one download
    assert container.load_calls == [multi_model_id("team-a/m1.tar.gz")]  # and one LoadModel
    name = multi_model_id("team-a/m1.tar.gz")
    assert container.loaded[name] == str(tmp_path / name / "model")
    assert json.loads((await _invoke(router, "m2.tar.gz")).body) == [21.0]
    assert len(container.load_calls) == 2
    await router.close()


async def test_a_model_the_container_lost_is_loaded_again_from_the_disk(
    container: MultiModelContainer, tmp_path: Path
) -> None:
    bucket = Bucket({"m1.tar.gz": 10.0})
    router = await _router(container, bucket, tmp_path)
    assert (await _invoke(router, "m1.tar.gz")).status == 200
    container.loaded.clear()  # the container restarted
    answer = await _invoke(router, "m1.tar.gz", b"2")
    assert (answer.status, json.loads(answer.body)) == (200, [12.0])
    assert len(container.load_calls) == 2
    assert len(bucket.fetched) == 1  # loaded from the instance's disk, not downloaded again
    await router.close()


async def test_a_target_model_with_no_object_is_sagemakers_validation_error(
    container: MultiModelContainer, tmp_path: Path
) -> None:
    router = await _router(container, Bucket({}), tmp_path)
    answer = await _invoke(router, "team-a/absent.tar.gz")
    assert answer.status == 400
    document = json.loads(answer.body)
    assert document["type"] == "TargetModelNotFoundError"  # the gateway's ValidationError
    assert (
        "Failed to download model data(bucket: bucket, key: mme/team-a/absent.tar.gz)" in document["message"]
    )
    assert container.load_calls == []
    await router.close()


async def test_the_containers_refusal_to_load_is_passed_on_naming_it(
    container: MultiModelContainer, tmp_path: Path
) -> None:
    container.refuse_load = 507
    router = await _router(container, Bucket({"m1.tar.gz": 1.0}), tmp_path)
    answer = await _invoke(router, "m1.tar.gz")
    assert answer.status == 507
    assert answer.headers[FAILED_CONTAINER_HEADER] == "model"
    container.refuse_load = None
    assert (await _invoke(router, "m1.tar.gz")).status == 200  # a refusal is not remembered
    await router.close()
