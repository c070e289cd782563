"""The traffic router: an asyncio HTTP/1.1 reverse proxy in front of one environment.

Weighted upstreams (smooth weighted round robin, as nginx does), health-aware (an upstream
that refuses connections is skipped for a moment and the request goes to another one),
connection draining (a removed upstream gets no new requests; `drain` waits for its
in-flight ones), keep-alive connections to upstreams, and per-upstream metrics.

A request is retried on another upstream when nothing of it can have been processed: the
connection was refused, or a reused idle connection closed before any answer (only for
idempotent methods). So instances can come and go under load without a failed request.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass, field

from shipline.deploy.metrics import UpstreamStats, Window, prometheus_text

_IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})
_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade"})
# What sends a head down the path that looks at every header: a hop-by-hop header, a
# chunked body, a name with blanks before its colon, a folded line. Without any of them the
# head is forwarded as it came (one regular expression, no per-header work).
_SLOW = re.compile(
    rb"\n(?:(?:connection|keep-alive|proxy-connection|te|trailer|upgrade|transfer-encoding)"
    rb"[ \t]*:|[^:\r\n]*[ \t]:|[ \t])",
    re.IGNORECASE,
)
_LENGTH = re.compile(rb"\ncontent-length:([^\r]*)", re.IGNORECASE)
_MAX_HEAD = 64 * 1024
_ATTEMPTS = 4
_BUFFER = 256 * 1024  # bodies up to this size are relayed in one write
_DOWN_FOR = 1.0  # seconds an upstream that refused a connection is skipped


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """An instance the router may send requests to; `weight` 0 takes it out of rotation."""

    id: str
    port: int
    weight: float
    release: str = ""
    host: str = "127.0.0.1"


@dataclass(eq=False)
class _Upstream:
    config: UpstreamConfig
    stats: UpstreamStats = field(default_factory=UpstreamStats)
    in_flight: int = 0
    current: float = 0.0  # smooth weighted round robin state
    down_until: float = 0.0
    removed: bool = False
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = field(default_factory=list)


class _Retry(Exception):
    pass


class Router:
    """Serves `host:port` and proxies each request to one of the upstreams.

    `set_upstreams` replaces the set (new ones added, missing ones start draining);
    `drain(id)` waits until a removed upstream has no request in flight.
    """

    def __init__(self, environment: str, host: str, port: int) -> None:
        self.environment = environment
        self.host = host
        self.port = port
        self._upstreams: dict[str, _Upstream] = {}
        self._server: asyncio.Server | None = None
        self._retired: list[_Upstream] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._client, self.host, self.port, limit=_MAX_HEAD, reuse_address=True
        )
        if self.port == 0:
            self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        for up in self._upstreams.values():
            _close_idle(up)

    # -- upstreams ----------------------------------------------------------------------

    def set_upstreams(self, configs: list[UpstreamConfig]) -> None:
        wanted = {c.id: c for c in configs}
        for uid, up in list(self._upstreams.items()):
            if uid not in wanted:
                up.removed = True
                _close_idle(up)
                del self._upstreams[uid]
                self._retired.append(up)
        for uid, config in wanted.items():
            existing = self._upstreams.get(uid)
            if existing is None:
                self._upstreams[uid] = _Upstream(config)
            else:
                existing.config = config
        self._retired = [u for u in self._retired if u.in_flight]

    def upstreams(self) -> list[UpstreamConfig]:
        return [u.config for u in self._upstreams.values()]

    async def drain(self, upstream_id: str, timeout: float) -> bool:
        """Wait until the (removed) upstream has no request in flight; False on timeout."""
        deadline = time.monotonic() + timeout
        ups = [u for u in self._retired if u.config.id == upstream_id]
        ups += [u for u in self._upstreams.values() if u.config.id == upstream_id]
        while any(u.in_flight for u in ups):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    def window(self, upstream_ids: list[str], seconds: float) -> list[Window]:
        return [
            self._upstreams[u].stats.window(seconds) for u in upstream_ids if u in self._upstreams
        ]

    def metrics_text(self) -> str:
        rows = [(u.config.id, u.config.release, u.stats) for u in self._upstreams.values()]
        return prometheus_text(self.environment, rows)

    def _pick(self, exclude: set[str]) -> _Upstream | None:
        """Smooth weighted round robin over the upstreams in rotation, not marked down and
        not tried already (no allocation per request)."""
        best = self._choose(exclude, time.monotonic())
        if best is None:
            # Every upstream was marked down: try them anyway rather than fail outright.
            best = self._choose(exclude, None)
        return best

    def _choose(self, exclude: set[str], now: float | None) -> _Upstream | None:
        total = 0.0
        best: _Upstream | None = None
        for u in self._upstreams.values():
            weight = u.config.weight
            if weight <= 0 or (now is not None and u.down_until > now):
                continue
            if exclude and u.config.id in exclude:
                continue
            u.current += weight
            total += weight
            if best is None or u.current > best.current:
                best = u
        if best is not None:
            best.current -= total
        return best

    # -- the proxy ----------------------------------------------------------------------

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        client_ip = peer[0] if isinstance(peer, tuple) else "unknown"
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                except asyncio.LimitOverrunError:
                    await _simple(writer, 431, b"request header too large")
                    return
                keep = await self._request(head, reader, writer, client_ip)
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def _request(
        self,
        head: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        client_ip: str,
    ) -> bool:
        eol = head.find(b"\r\n")
        parts = head[:eol].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            await _simple(writer, 400, b"bad request line")
            return False
        method, _target, version = parts
        if version == b"HTTP/1.1" and _SLOW.search(head) is None:
            # The common case: an HTTP/1.1 request without hop-by-hop headers or a chunked
            # body is forwarded as it came, plus X-Forwarded-For (no per-header work).
            length = 0
            lengths = _LENGTH.findall(head)
            if lengths:
                value = lengths[0].strip()
                if len(lengths) > 1 or not value.isdigit():
                    await _simple(writer, 400, b"bad content-length")
                    return False
                length = int(value)
            body = await reader.readexactly(length) if length else b""
            out = b"%sX-Forwarded-For: %s\r\n\r\n%s" % (head[:-2], client_ip.encode(), body)
            return await self._forward(out, method, writer, True)
        lines = head[:-4].split(b"\r\n")
        headers: list[tuple[bytes, bytes]] = []
        length = 0
        chunked = False
        keep_alive = version == b"HTTP/1.1"
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or name[-1:] in b" \t" or line[:1] in b" \t":
                # No colon, blanks before it, or a folded line: RFC 9112 says refuse (a
                # name the upstream reads differently is how requests are smuggled).
                await _simple(writer, 400, b"bad header")
                return False
            lname = name.strip().lower()
            value = value.strip()
            if lname == b"content-length":
                if not value.isdigit():
                    await _simple(writer, 400, b"bad content-length")
                    return False
                length = int(value)
            elif lname == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif lname == b"connection":
                low = value.lower()
                keep_alive = b"close" not in low and (keep_alive or b"keep-alive" in low)
                continue
            if lname in _HOP:
                continue
            headers.append((name, value))
        body = await _read_body(reader, length, chunked)
        headers.append((b"X-Forwarded-For", client_ip.encode()))
        if chunked:
            headers = [(n, v) for n, v in headers if n.lower() != b"transfer-encoding"]
            headers.append((b"Content-Length", str(len(body)).encode()))
        out_head = b"\r\n".join(
            [lines[0].replace(version, b"HTTP/1.1", 1)]
            + [n + b": " + v for n, v in headers]
            + [b"Connection: keep-alive", b"", b""]
        )
        return await self._forward(out_head + body, method, writer, keep_alive)

    async def _forward(
        self, request: bytes, method: bytes, writer: asyncio.StreamWriter, keep_alive: bool
    ) -> bool:
        """Send `request` to an upstream (another one while nothing of it can have been
        processed) and relay the answer; returns whether the client connection stays."""
        tried: set[str] = set()
        for _ in range(_ATTEMPTS):
            up = self._pick(tried)
            if up is None:
                break
            tried.add(up.config.id)
            up.in_flight += 1
            started = time.perf_counter()
            try:
                ok, status = await self._exchange(up, request, method, writer, keep_alive)
            except _Retry:
                continue
            except (ConnectionError, asyncio.IncompleteReadError, OSError):
                # The answer broke off after it began: nothing can be retried.
                up.stats.record((time.perf_counter() - started) * 1000, True)
                return False
            finally:
                up.in_flight -= 1
            up.stats.record((time.perf_counter() - started) * 1000, status >= 500)
            return ok and keep_alive
        await _simple(writer, 502, b"no healthy upstream")
        return keep_alive

    async def _exchange(
        self,
        up: _Upstream,
        request: bytes,
        method: bytes,
        writer: asyncio.StreamWriter,
        keep_alive: bool,
    ) -> tuple[bool, int]:
        conn = await self._connect(up)
        ureader, uwriter = conn
        try:
            uwriter.write(request)
            if uwriter.transport.get_write_buffer_size() > _BUFFER:
                await uwriter.drain()
            head = await ureader.readuntil(b"\r\n\r\n")
        except (ConnectionError, asyncio.IncompleteReadError, OSError) as exc:
            uwriter.close()
            if method in _IDEMPOTENT:
                raise _Retry from exc
            raise
        eol = head.find(b"\r\n")
        fields = head[:eol].split(b" ", 2)
        status = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 502
        if (
            keep_alive
            and head.startswith(b"HTTP/1.1 ")
            and status >= 200
            and status not in (204, 304)
            and method != b"HEAD"
            and _SLOW.search(head) is None
        ):
            # The common case: a keep-alive answer with one Content-Length and no
            # hop-by-hop headers goes back as it came, head and body in one write.
            lengths = _LENGTH.findall(head)
            if len(lengths) == 1:
                value = lengths[0].strip()
                if value.isdigit() and int(value) <= _BUFFER:
                    writer.write(head + await ureader.readexactly(int(value)))
                    if writer.transport.get_write_buffer_size() > _BUFFER:
                        await writer.drain()
                    if up.removed:
                        uwriter.close()
                    else:
                        up.idle.append(conn)
                    return True, status
        status_line, *header_lines = head[:-4].split(b"\r\n")
        length: int | None = None
        chunked = False
        upstream_close = False
        out = [status_line]
        for line in header_lines:
            name, _, value = line.partition(b":")
            lname = name.strip().lower()
            value = value.strip()
            if lname == b"content-length":
                length = int(value)
            elif lname == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif lname == b"connection":
                upstream_close = b"close" in value.lower()
                continue
            if lname in _HOP and lname != b"transfer-encoding":
                continue
            out.append(line)
        no_body = method == b"HEAD" or status in (204, 304) or 100 <= status < 200
        until_close = not no_body and length is None and not chunked
        client_keep = keep_alive and not until_close
        out.append(b"Connection: keep-alive" if client_keep else b"Connection: close")
        head_out = b"\r\n".join(out) + b"\r\n\r\n"
        if not no_body and length is not None and length <= _BUFFER:
            # The common case: one write of head and body, no drain unless the client lags.
            writer.write(head_out + await ureader.readexactly(length))
        else:
            writer.write(head_out)
            if not no_body:
                if chunked:
                    await _relay_chunked(ureader, writer)
                elif length is not None:
                    await _relay(ureader, writer, length)
                else:
                    while chunk := await ureader.read(65536):
                        writer.write(chunk)
                        await writer.drain()
                    upstream_close = True
        if writer.transport.get_write_buffer_size() > _BUFFER:
            await writer.drain()
        if upstream_close or up.removed:
            uwriter.close()
        else:
            up.idle.append(conn)
        return client_keep, status

    async def _connect(self, up: _Upstream) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while up.idle:
            conn = up.idle.pop()
            if not conn[0].at_eof() and not conn[1].is_closing():
                return conn
            conn[1].close()
        try:
            return await asyncio.open_connection(up.config.host, up.config.port, limit=_MAX_HEAD)
        except OSError as exc:
            up.down_until = time.monotonic() + _DOWN_FOR
            raise _Retry from exc


async def _read_body(reader: asyncio.StreamReader, length: int, chunked: bool) -> bytes:
    if chunked:
        parts: list[bytes] = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                # Trailers end with an empty line.
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    return await reader.readexactly(length) if length else b""


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, length: int) -> None:
    remaining = length
    while remaining:
        chunk = await reader.read(min(remaining, 65536))
        if not chunk:
            raise asyncio.IncompleteReadError(b"", remaining)
        writer.write(chunk)
        remaining -= len(chunk)
        if writer.transport.get_write_buffer_size() > _BUFFER:
            await writer.drain()


async def _relay_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        size_line = await reader.readuntil(b"\r\n")
        writer.write(size_line)
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while True:
                line = await reader.readuntil(b"\r\n")
                writer.write(line)
                if line == b"\r\n":
                    return
        writer.write(await reader.readexactly(size + 2))


async def _simple(writer: asyncio.StreamWriter, status: int, text: bytes) -> None:
    reason = {400: b"Bad Request", 431: b"Too Large", 502: b"Bad Gateway"}.get(status, b"Error")
    writer.write(
        b"HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
        % (status, reason, len(text), text)
    )
    with contextlib.suppress(ConnectionError):
        await writer.drain()


def _close_idle(up: _Upstream) -> None:
    for _, w in up.idle:
        w.close()
    up.idle.clear()
