"""The Direct router: which container a call goes to, the errors when none, readiness of the
whole instance, bytes passed through untouched, and per-container metrics."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from sageport.net import awserrors
from sageport.net.httpserver import Request
from sageport.router.app import Router, RouterSettings
from sageport.router.metrics import RouterMetrics
from sageport.router.routing import Container, choose, container_table, parse_container

TABLE = container_table([Container("sklearn", 23000), Container("custom", 23066)])


def test_the_hostname_picks_the_container() -> None:
    assert choose(TABLE, "custom") == Container("custom", 23066)
    assert choose(TABLE, "sklearn").port == 23000


@pytest.mark.parametrize("hostname", [None, ""])
def test_a_missing_hostname_is_a_validation_error_listing_the_containers(hostname: str | None) -> None:
    with pytest.raises(awserrors.ApiError) as error:
        choose(TABLE, hostname)
    assert (error.value.code, error.value.status) == ("ValidationError", 400)
    assert "TargetContainerHostname is required (one of: sklearn, custom)" in error.value.message


def test_an_unknown_hostname_is_a_validation_error_listing_the_valid_ones() -> None:
    with pytest.raises(awserrors.ApiError) as error:
        choose(TABLE, "Sklearn")  # hostnames are case-sensitive, as in SageMaker
    assert error.value.code == "ValidationError"
    assert error.value.message == "Container hostname Sklearn not found; valid hostnames: sklearn, custom."


def test_container_arguments_are_checked() -> None:
    assert parse_container("pre-1=23000") == Container("pre-1", 23000)
    for bad in ("-x=23000", "x=", "x=port", "x=70000", "=23000", "a_b=1"):
        with pytest.raises(ValueError, match="HOSTNAME=PORT"):
            parse_container(bad)
    with pytest.raises(ValueError, match="given twice"):
        container_table([Container("a", 1), Container("a", 2)])


async def _backend(name: str, ready: bool = True) -> tuple[web.AppRunner, int]:
    async def ping(request: web.Request) -> web.Response:
        return web.Response(status=200 if ready else 503)

    async def invocations(request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("X-Amzn-SageMaker-Custom-Attributes") == "fail":
            return web.Response(status=500, text=f"{name} failed")
        headers = {"X-Amzn-SageMaker-Custom-Attributes": f"container={name}"}
        seen = {"name": name, "body": body.hex(), "type": request.headers.get("Content-Type")}
        return web.Response(body=json.dumps(seen).encode(), content_type="application/json", headers=headers)

    app = web.Application()
    app.router.add_get("/ping", ping)
    app.router.add_post("/invocations", invocations)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, port


@pytest.fixture
async def router() -> AsyncIterator[Router]:
    a, port_a = await _backend("a")
    b, port_b = await _backend("b")
    metrics = RouterMetrics(CollectorRegistry(), "ep", "AllTraffic")
    routed = Router(
        container_table([Container("a", port_a), Container("b", port_b)]), metrics, RouterSettings()
    )
    await routed.start()
    yield routed
    await routed.close()
    await a.cleanup()
    await b.cleanup()


def _request(method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> Request:
    headers = headers or {}
    return Request(method, path, "", headers, {k: [v] for k, v in headers.items()}, "1.1", body)


async def test_raw_bytes_reach_the_named_container_and_come_back(router: Router) -> None:
    body = bytes(range(256))
    request = _request(
        "POST",
        "/invocations",
        {"x-amzn-sagemaker-target-container-hostname": "b", "content-type": "application/x-npy"},
        body,
    )
    response = await router.handle(request, None)  # type: ignore[arg-type]
    assert response is not None
    assert response.status == 200
    assert json.loads(response.body) == {"name": "b", "body": body.hex(), "type": "application/x-npy"}
    assert response.headers["x-amzn-sagemaker-custom-attributes"] == "container=b"
    assert "content-length" not in response.headers


async def test_an_unknown_container_is_answered_by_the_router_in_sagemaker_shape(router: Router) -> None:
    request = _request("POST", "/invocations", {"x-amzn-sagemaker-target-container-hostname": "c"})
    response = await router.handle(request, None)  # type: ignore[arg-type]
    assert response is not None
    assert response.status == 400
    assert response.headers["x-amzn-ErrorType"] == "ValidationError"
    assert "valid hostnames: a, b" in json.loads(response.body)["message"]


async def test_metrics_count_per_container_with_sagemaker_names(router: Router) -> None:
    for target, attributes in (("a", ""), ("a", "fail"), ("b", "")):
        headers = {"x-amzn-sagemaker-target-container-hostname": target}
        if attributes:
            headers["x-amzn-sagemaker-custom-attributes"] = attributes
        await router.handle(_request("POST", "/invocations", headers), None)  # type: ignore[arg-type]
    registry = router.metrics.registry

    def value(name: str, container: str) -> float | None:
        labels = {"endpoint": "ep", "variant": "AllTraffic", "container": container}
        return registry.get_sample_value(name, labels)

    assert value("sageport_container_invocations_total", "a") == 2
    assert value("sageport_container_invocations_total", "b") == 1
    assert value("sageport_container_invocation_5xx_errors_total", "a") == 1
    assert value("sageport_container_invocation_5xx_errors_total", "b") == 0
    assert value("sageport_container_latency_seconds_count", "b") == 1
    page = await router.handle(_request("GET", "/metrics"), None)  # type: ignore[arg-type]
    assert page is not None
    assert b'sageport_container_latency_seconds_bucket{container="a"' in page.body


async def test_the_instance_is_ready_only_when_every_container_is() -> None:
    up, port_up = await _backend("up")
    down, port_down = await _backend("down", ready=False)
    both = container_table([Container("up", port_up), Container("down", port_down)])

    async def ping(containers: dict[str, Container]) -> tuple[int, bytes]:
        router = Router(containers, RouterMetrics(CollectorRegistry(), "ep", "v"), RouterSettings())
        await router.start()
        try:
            response = await router.ping()
            return response.status, response.body
        finally:
            await router.close()

    try:
        assert await ping(both) == (503, b"not ready: down\n")
        assert (await ping({"up": both["up"]}))[0] == 200
        assert b"gone" in (await ping({**both, "gone": Container("gone", 1)}))[1]  # nothing on port 1
    finally:
        await up.cleanup()
        await down.cleanup()
