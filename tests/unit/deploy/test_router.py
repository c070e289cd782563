"""The traffic router against real HTTP upstreams on 127.0.0.1: weights, failover when an
upstream refuses connections, draining, chunked bodies, and the metrics it exports."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shipline.deploy.router import Router, UpstreamConfig


async def _upstream(name: str) -> tuple[asyncio.Server, int]:
    """A tiny keep-alive HTTP server: /slow waits, /fail answers 500, /chunked streams."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length) if length else b""
                path = head.split(b" ")[1]
                if path == b"/slow":
                    await asyncio.sleep(0.5)
                if path == b"/echo":
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(head), head)
                    )
                elif path == b"/close":
                    writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbye")
                    await writer.drain()
                    writer.close()
                    return
                elif path == b"/chunked":
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                        b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
                    )
                else:
                    status = b"500 Oops" if path == b"/fail" else b"200 OK"
                    payload = name.encode() + (b":" + body if body else b"")
                    writer.write(
                        b"HTTP/1.1 %s\r\nContent-Length: %d\r\n\r\n%s"
                        % (status, len(payload), payload)
                    )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


Scenario = Callable[[Router, dict[str, int], httpx.AsyncClient], Awaitable[None]]


def _run(scenario: Scenario, names: tuple[str, ...] = ("a", "b")) -> None:
    async def main() -> None:
        servers = {n: await _upstream(n) for n in names}
        router = Router("test", "127.0.0.1", 0)
        await router.start()
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{router.port}") as client:
                await scenario(router, {n: p for n, (_, p) in servers.items()}, client)
        finally:
            await router.close()
            for server, _ in servers.values():
                server.close()

    asyncio.run(main())


def test_weights_split_requests_exactly() -> None:
    async def scenario(router: Router, ports: dict[str, int], client: httpx.AsyncClient) -> None:
        router.set_upstreams(
            [UpstreamConfig("a", ports["a"], 1.0), UpstreamConfig("b", ports["b"], 3.0)]
        )
        seen = Counter([(await client.get("/")).text for _ in range(100)])
        assert seen == {"a": 25, "b": 75}
        router.set_upstreams(
            [UpstreamConfig("a", ports["a"], 0.0), UpstreamConfig("b", ports["b"], 1.0)]
        )
        assert {(await client.get("/")).text for _ in range(10)} == {"b"}

    _run(scenario)


def test_a_refusing_upstream_is_skipped_without_failing_requests() -> None:
    async def scenario(router: Router, ports: dict[str, int], client: httpx.AsyncClient) -> None:
        router.set_upstreams(
            [UpstreamConfig("gone", _closed_port(), 1.0), UpstreamConfig("a", ports["a"], 1.0)]
        )
        responses = [await client.get("/") for _ in range(20)]
        assert [r.status_code for r in responses] == [200] * 20
        assert {r.text for r in responses} == {"a"}

    _run(scenario, ("a",))


def test_no_upstream_is_a_502() -> None:
    async def scenario(router: Router, ports: dict[str, int], client: httpx.AsyncClient) -> None:
        response = await client.get("/")
        assert response.status_code == 502
        assert response.text == "no healthy upstream"

    _run(scenario, ())


def test_removed_upstream_drains_its_requests_in_flight() -> None:
    async def scenario(router: Router, ports: dict[str, int], client: httpx.AsyncClient) -> None:
        router.set_upstreams([UpstreamConfig("a", ports["a"], 1.0)])
        slow = asyncio.create_task(client.get("/slow"))
        await asyncio.sleep(0.1)
        router.set_upstreams([UpstreamConfig("b", ports["b"], 1.0)])
        assert (await client.get("/")).text == "b"  # new requests go to b at once
        assert await router.drain("a", 0.05) is False  # still busy
        assert await router.drain("a", 5.0) is True
        assert (await slow).text == "a"

    _run(scenario)


def test_bodies_and_chunked_answers_pass_through() -> None:
    async def scenario(router: Router, ports: dict[str, int], client: httpx.AsyncClient) -> None:
        router.set_upstreams([UpstreamConfig("a", ports["a"], 1.0)])
        assert (await client.post("/", content=b"payload")).text == "a:payload"

        async def chunks() -> AsyncIterator[bytes]:
            yield b"pay"
            yield b"load"

        assert (await client.post("/", content=chunks())).text == "a:payload"
        assert (await client.get("/chunked")).text == "abcdefg"

    _run(scenario, ("a",))


async def _raw(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    try:
        return await asyncio.wait_for(reader.read(65536), 5)
    finally:
        writer.close()


def test_heads_are_forwarded_as_they_came_without_hop_by_hop_headers() -> None:
    async def scenario(router: Router, ports: dict[str, int], client: httpx.AsyncClient) -> None:
        router.set_upstreams([UpstreamConfig("a", ports["a"], 1.0)])
        # The common request: forwarded byte for byte, plus X-Forwarded-For.
        plain = b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Case: MiXeD\r\n\r\n"
        answer = await _raw(router.port, plain)
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert answer.endswith(plain[:-2] + b"X-Forwarded-For: 127.0.0.1\r\n\r\n")
        # Hop-by-hop headers of the client stay on its hop; the upstream keeps alive.
        hop = (
            b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, TE\r\n"
            b"TE: trailers\r\nKeep-Alive: timeout=5\r\nX-Kept: 1\r\n\r\n"
        )
        echoed = (await _raw(router.port, hop)).split(b"\r\n\r\n", 1)[1].lower()
        assert b"x-kept: 1" in echoed and b"x-forwarded-for" in echoed
        assert b"te:" not in echoed and b"keep-alive: timeout" not in echoed
        assert echoed.count(b"connection:") == 1 and b"connection: keep-alive" in echoed
        # Two lengths: a request smuggling attempt, refused.
        twice = b"POST /echo HTTP/1.1\r\nContent-Length: 1\r\ncontent-length: 2\r\n\r\nab"
        assert (await _raw(router.port, twice)).startswith(b"HTTP/1.1 400")
        bad = b"POST /echo HTTP/1.1\r\nContent-Length: -1\r\n\r\n"
        assert (await _raw(router.port, bad)).startswith(b"HTTP/1.1 400")
        # Blanks before a colon, or a folded line: refused (RFC 9112), not forwarded.
        for head in (b"Content-Length : 2\r\n", b"X-A: 1\r\n Content-Length: 2\r\n"):
            odd = b"POST /echo HTTP/1.1\r\n" + head + b"\r\nab"
            assert (await _raw(router.port, odd)).startswith(b"HTTP/1.1 400")
        # An answer that closes its connection: the client is told, and it is not reused.
        closing = await _raw(router.port, b"GET /close HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"Connection: close" in closing and closing.endswith(b"bye")
        assert (await client.get("/")).text == "a"

    _run(scenario, ("a",))


def test_metrics_count_requests_errors_and_latency() -> None:
    async def scenario(router: Router, ports: dict[str, int], client: httpx.AsyncClient) -> None:
        router.set_upstreams([UpstreamConfig("a", ports["a"], 1.0, release="r1")])
        for _ in range(3):
            await client.get("/")
        await client.get("/fail")
        [window] = router.window(["a"], 60)
        assert (window.requests, window.errors) == (4, 1)
        assert window.error_rate == pytest.approx(0.25)
        assert window.p95_ms is not None and window.p95_ms < 1000
        text = router.metrics_text()
        labels = 'environment="test",upstream="a",release="r1"'
        assert f"shipline_router_requests_total{{{labels}}} 4" in text
        assert f"shipline_router_errors_total{{{labels}}} 1" in text
        assert f'shipline_router_request_duration_ms_bucket{{{labels},le="+Inf"}} 4' in text
        assert f"shipline_router_request_duration_ms_count{{{labels}}} 4" in text
        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert families["shipline_router_requests"].samples[0].value == 4
        assert families["shipline_router_request_duration_ms"].type == "histogram"

    _run(scenario, ("a",))
