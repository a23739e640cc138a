"""The Serial pipeline router: the chain's order, raw bytes and Content-Type handed from stage to
stage, Accept for the last stage, streaming of the last stage, a failing stage named, a missing
stage sending the call elsewhere, readiness of the whole instance, and the addresses file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from sageport.contract import FAILED_CONTAINER_HEADER, RETRY_ELSEWHERE_HEADER
from sageport.net.httpserver import Request, Response
from sageport.router.app import Router, RouterSettings
from sageport.router.metrics import RouterMetrics
from sageport.router.routing import Container, parse_stage_addresses

FAILED = FAILED_CONTAINER_HEADER
RETRY = RETRY_ELSEWHERE_HEADER


@dataclass
class Stage:
    """A stage that appends its name to the body (raw bytes) and answers in its own type."""

    name: str
    content_type: str
    ready: bool = True
    fail: int | None = None
    stream: bool = False
    seen: list[dict[str, Any]] = field(default_factory=list)
    runner: web.AppRunner | None = None
    port: int = 0

    async def start(self) -> None:
        async def ping(request: web.Request) -> web.Response:
            return web.Response(status=200 if self.ready else 503)

        async def invocations(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            self.seen.append({"body": body, **{k.lower(): v for k, v in request.headers.items()}})
            if self.fail:
                return web.Response(status=self.fail, text=f"{self.name} says no")
            out = body + b"|" + self.name.encode()
            if self.stream:
                response = web.StreamResponse(headers={"Content-Type": self.content_type})
                response.enable_chunked_encoding()
                await response.prepare(request)
                for part in (out[:3], out[3:]):
                    await response.write(part)
                await response.write_eof()
                return response
            return web.Response(body=out, headers={"Content-Type": self.content_type})

        app = web.Application()
        app.router.add_get("/ping", ping)
        app.router.add_post("/invocations", invocations)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


class Sink:
    """What a streamed answer wrote."""

    def __init__(self) -> None:
        self.started = False
        self.status = 0
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []
        self.ended = False

    async def start(self, status: int, headers: dict[str, str]) -> None:
        self.started, self.status, self.headers = True, status, headers

    async def write(self, data: bytes) -> None:
        self.chunks.append(data)

    async def end(self) -> None:
        self.ended = True


@pytest.fixture
async def stages() -> AsyncIterator[list[Stage]]:
    made = [Stage("pre", "text/csv"), Stage("model", "application/json"), Stage("post", "application/x-post")]
    for stage in made:
        await stage.start()
    yield made
    for stage in made:
        assert stage.runner is not None
        await stage.runner.cleanup()


def addresses(stages: list[Stage]) -> str:
    return ",".join(f"{s.name}=127.0.0.1:{s.port}" for s in stages)


async def _router(stages: list[Stage], file: Path | None = None) -> Router:
    first, *rest = stages
    router = Router(
        {first.name: Container(first.name, first.port)},
        RouterMetrics(CollectorRegistry(), "ep", "AllTraffic"),
        RouterSettings(),
        stages=[s.name for s in rest],
        stages_file=str(file) if file else None,
    )
    await router.start()
    if file is None:
        router.set_stage_addresses(addresses(rest))
    return router


def _call(headers: dict[str, str], body: bytes) -> Request:
    return Request("POST", "/invocations", "", headers, {k: [v] for k, v in headers.items()}, "1.1", body)


async def _invoke(router: Router, headers: dict[str, str], body: bytes, sink: Sink | None = None) -> Response:
    answer = await router.handle(_call(headers, body), sink or Sink())  # type: ignore[arg-type]
    assert answer is not None
    return answer


async def test_each_stage_gets_the_previous_answer_raw_with_its_content_type(stages: list[Stage]) -> None:
    router = await _router(stages)
    try:
        body = bytes(range(256))
        headers = {
            "content-type": "application/x-raw",
            "accept": "application/x-final",
            "x-amzn-sagemaker-custom-attributes": "trace=1",
        }
        answer = await _invoke(router, headers, body)
    finally:
        await router.close()
    assert answer.status == 200
    assert answer.body == body + b"|pre|model|post"
    assert answer.headers["content-type"] == "application/x-post"
    pre, model, post = (stage.seen[0] for stage in stages)
    assert (pre["body"], model["body"], post["body"]) == (body, body + b"|pre", body + b"|pre|model")
    assert [pre["content-type"], model["content-type"], post["content-type"]] == [
        "application/x-raw",
        "text/csv",
        "application/json",
    ]
    # The client's Accept is the last stage's business; the others answer in their own type.
    assert ("accept" in pre, "accept" in model) == (False, False)
    assert post["accept"] == "application/x-final"
    assert all(seen["x-amzn-sagemaker-custom-attributes"] == "trace=1" for seen in (pre, model, post))


async def test_the_last_stage_streams_through(stages: list[Stage]) -> None:
    stages[2].stream = True
    router = await _router(stages)
    sink = Sink()
    try:
        answer = await router.handle(_call({"content-type": "text/plain"}, b"x"), sink)  # type: ignore[arg-type]
    finally:
        await router.close()
    assert answer is None
    assert (sink.status, sink.ended) == (200, True)
    assert b"".join(sink.chunks) == b"x|pre|model|post"
    assert len(sink.chunks) >= 2  # chunk by chunk, not buffered


@pytest.mark.parametrize("failing", [0, 1, 2])
async def test_a_failing_stage_ends_the_chain_and_is_named(stages: list[Stage], failing: int) -> None:
    stages[failing].fail = 500
    router = await _router(stages)
    try:
        answer = await _invoke(router, {"content-type": "text/plain"}, b"x")
    finally:
        await router.close()
    assert answer.status == 500
    assert answer.headers[FAILED] == stages[failing].name
    assert answer.body == f"{stages[failing].name} says no".encode()
    assert all(not stage.seen for stage in stages[failing + 1 :])  # nothing after it was called
    registry = router.metrics.registry
    labels = {"endpoint": "ep", "variant": "AllTraffic", "container": stages[failing].name}
    assert registry.get_sample_value("sageport_container_invocation_5xx_errors_total", labels) == 1


async def test_a_4xx_stage_is_named_too(stages: list[Stage]) -> None:
    stages[1].fail = 415
    router = await _router(stages)
    try:
        answer = await _invoke(router, {"content-type": "text/plain"}, b"x")
    finally:
        await router.close()
    assert (answer.status, answer.headers[FAILED]) == (415, "model")


async def test_a_stage_that_is_not_there_sends_the_call_elsewhere(stages: list[Stage]) -> None:
    router = await _router(stages)
    try:
        router.set_stage_addresses(f"model=127.0.0.1:{stages[1].port}")  # post has no address
        answer = await _invoke(router, {}, b"x")
        assert (answer.status, answer.headers[FAILED], answer.headers[RETRY]) == (503, "post", "post")
        router.set_stage_addresses(f"model=127.0.0.1:{stages[1].port},post=127.0.0.1:1")  # refused
        answer = await _invoke(router, {}, b"x")
        assert (answer.status, answer.headers[RETRY]) == (503, "post")
        assert b"refused the connection" in answer.body
    finally:
        await router.close()


async def test_the_instance_is_ready_only_when_every_stage_is(stages: list[Stage], tmp_path: Path) -> None:
    file = tmp_path / "stages"
    router = await _router(stages, file)  # no file yet: the stages' addresses are unknown
    try:
        response = await router.ping()
        assert (response.status, response.body) == (503, b"not ready: model, post\n")
        file.write_text(addresses(stages[1:]))
        assert (await router.ping()).status == 200
        stages[2].ready = False
        assert (await router.ping()).body == b"not ready: post\n"
        stages[2].ready = True
        file.write_text(addresses(stages[1:2]))  # the operator took post out: its pod went
        assert (await router.ping()).body == b"not ready: post\n"
        router.draining = True
        assert (await router.ping()).status == 503
    finally:
        await router.close()


def test_stage_addresses_parse_and_bad_entries_are_left_out() -> None:
    parsed = parse_stage_addresses(
        "pre=10.0.0.5:23016, post=[fd00::7]:23032,bad,x=1.2.3.4:99999,-y=1.1.1.1:1"
    )
    assert {host: (target.host, target.port) for host, target in parsed.items()} == {
        "pre": ("10.0.0.5", 23016),
        "post": ("fd00::7", 23032),
    }
    assert parse_stage_addresses("") == {}


def test_the_router_command_line_checks_a_pipeline(capsys: pytest.CaptureFixture[str]) -> None:
    from sageport.router.main import build_parser

    args = build_parser().parse_args(
        ["--container=pre=23000", "--stage=model", "--stage=post", "--stages-file=/etc/sageport/pod/stages"]
    )
    assert (args.stage, args.stages_file) == (["model", "post"], "/etc/sageport/pod/stages")
    from sageport.router.main import main

    for bad in (["--container=a=1", "--container=b=2", "--stage=c"], ["--container=a=1", "--stage=a"]):
        with pytest.raises(SystemExit):
            main(bad)
    assert "needs exactly one --container" in capsys.readouterr().err
