"""A model container for tests: speaks the SageMaker container contract (GET /ping, POST /invocations).

Behaviour per request comes from CustomAttributes ``mode=...`` so one process can play every
part: ``echo`` (default), ``headers`` (JSON of the headers received), ``status:<code>``,
``sleep:<seconds>``, ``big:<bytes>`` (a body of that size), ``stream:<chunks>``, ``stream-break``, ``stream-stall:<seconds>``.
``--loading`` makes every invocation answer 429 (a model still loading); ``--sleep S`` makes
every invocation take S seconds more (a slow shadow). ``GET /seen`` is the number of invocations.
Run: python tests/integration/gateway/backend.py --name b1 [--port 0]; prints ``PORT <n>``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from aiohttp import web


def _mode(request: web.Request) -> tuple[str, str]:
    attributes = request.headers.get("X-Amzn-SageMaker-Custom-Attributes", "")
    for part in attributes.split(";"):
        key, _, value = part.strip().partition("=")
        if key == "mode":
            kind, _, argument = value.partition(":")
            return kind, argument
    return "echo", ""


def make_app(name: str, loading: bool = False, sleep: float = 0.0, max_body_mib: int = 64) -> web.Application:
    seen = [0]

    async def ping(request: web.Request) -> web.Response:
        return web.Response(status=503 if loading else 200, text="")

    async def count(request: web.Request) -> web.Response:
        return web.Response(text=str(seen[0]))

    async def invocations(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        seen[0] += 1
        if sleep:
            await asyncio.sleep(sleep)
        if loading:
            return web.Response(status=429, text=f"model on {name} is still loading")
        kind, argument = _mode(request)
        reply_headers = {"X-Amzn-SageMaker-Custom-Attributes": f"backend={name}"}
        content_type = request.headers.get("Content-Type", "application/octet-stream")
        if kind == "status":
            return web.Response(
                status=int(argument), text=f"{name} failed with {argument}", headers=reply_headers
            )
        if kind == "sleep":
            await asyncio.sleep(float(argument))
        if kind == "big":
            return web.Response(body=b"z" * int(argument), headers=reply_headers)
        if kind == "headers":
            received = {key: value for key, value in request.headers.items()}
            answer = {"backend": name, "path": request.path, "headers": received}
            return web.json_response(answer, headers=reply_headers)
        if kind.startswith("stream"):
            response = web.StreamResponse(headers={**reply_headers, "Content-Type": "text/plain"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            chunks = int(argument) if kind == "stream" and argument else 3
            for index in range(chunks):
                await response.write(f"{name}-chunk-{index};".encode())
                await asyncio.sleep(0.01)
                if kind == "stream-break" and index == 1:
                    assert request.transport is not None
                    request.transport.abort()
                    return response
                if kind == "stream-stall":
                    await asyncio.sleep(float(argument))
            await response.write_eof()
            return response
        return web.Response(body=body, headers={**reply_headers, "Content-Type": content_type})

    app = web.Application(client_max_size=max_body_mib * 1024 * 1024)
    app.router.add_get("/ping", ping)
    app.router.add_get("/seen", count)
    app.router.add_post("/invocations", invocations)
    app.router.add_post("/models/{model}/invoke", invocations)  # a multi-model container's route
    # The same handler under the Runtime API path lets a boto3 client call the backend directly
    # (the benchmark's baseline).
    app.router.add_post("/endpoints/{name}/invocations", invocations)
    return app


async def _serve(name: str, host: str, port: int, loading: bool, sleep: float, max_body_mib: int) -> None:
    runner = web.AppRunner(make_app(name, loading, sleep, max_body_mib), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    assert server is not None
    bound = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    print(f"PORT {bound}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", default="backend")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--loading", action="store_true")
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--max-body-mib", type=int, default=64, help="larger request bodies are answered 413")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(_serve(args.name, args.host, args.port, args.loading, args.sleep, args.max_body_mib))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
