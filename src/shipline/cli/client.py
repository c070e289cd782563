"""The CLI's client of the REST API: `ApiClient`, the options every client command takes,
and how failures reach the user (one line on stderr, exit 1; usage errors exit 2).

httpx is imported when a client is made, not with this module, so that commands which do
not talk to a server (`shipline run`) do not pay for it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    import httpx

__all__ = [
    "JSON_OPTION",
    "SERVER_OPTION",
    "TOKEN_OPTION",
    "ApiClient",
    "ApiError",
    "ClientError",
    "connect",
    "print_json",
]

DEFAULT_URL = "http://127.0.0.1:8080"
API = "/api/v1"

SERVER_OPTION: Any = typer.Option(
    DEFAULT_URL,
    "--server",
    envvar="SHIPLINE_URL",
    metavar="URL",
    help="The Shipline server.",
)
TOKEN_OPTION: Any = typer.Option(
    None,
    "--token",
    envvar="SHIPLINE_TOKEN",
    metavar="TOKEN",
    show_default=False,
    help="API token. Prefer the env var SHIPLINE_TOKEN: a flag's value shows in `ps`.",
)
JSON_OPTION: Any = typer.Option(False, "--json", help="Print the API's JSON objects.")

# What an API object is to the CLI: JSON it prints or reads a few fields of.
ApiObject = dict[str, Any]


class ClientError(Exception):
    """A failure to show the user as one line; `exit_code` 1 (failure) or 2 (usage)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class ApiError(ClientError):
    """The server answered with an error status: `{"error": {code, message, field}}`."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        where = f" ({field})" if field else ""
        super().__init__(f"{status} {code}: {message}{where}")
        self.status = status
        self.code = code
        self.field = field


def _error_of(response: httpx.Response) -> ApiError:
    """The API's error body as an `ApiError`; anything else by its status line."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return ApiError(
                status,
                str(error.get("code") or response.reason_phrase or "error"),
                str(error.get("message") or ""),
                str(error["field"]) if error.get("field") else None,
            )
        detail = body.get("detail")  # FastAPI's own shape, should a route ever use it
        if detail is not None:
            return ApiError(status, response.reason_phrase or "error", _one_line(detail))
    text = _one_line(response.text) if response.text else ""
    return ApiError(status, response.reason_phrase or "error", text[:200])


def _one_line(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return " ".join(text.split())


class ApiClient:
    """A session with the server at `url` (e.g. `http://127.0.0.1:8080`) as `token`.

    Methods take paths under `/api/v1` and return the decoded JSON; an error status raises
    `ApiError`, an unreachable server `ClientError`. `transport` is for tests
    (`httpx.MockTransport`).
    """

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
    ) -> None:
        import httpx

        self.url = url.rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise ClientError(f"--server must be an http:// or https:// URL, got {url!r}", 2)
        headers = {"Accept": "application/json", "User-Agent": "shipline-cli"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.url + API, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def get(self, path: str, params: Mapping[str, object] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: object = None) -> Any:
        return self.request("POST", path, body=body)

    def put(self, path: str, body: object = None) -> Any:
        return self.request("PUT", path, body=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, object] | None = None,
        body: object = None,
    ) -> Any:
        """One call; the decoded JSON body (None when empty)."""
        with self._send(method, path, params=params, body=body) as response:
            response.read()
            if not response.content:
                return None
            try:
                return response.json()
            except ValueError:
                return response.text

    def text(self, path: str, params: Mapping[str, object] | None = None) -> str:
        """A plain-text resource (a log)."""
        with self._send("GET", path, params=params, accept="text/plain") as response:
            response.read()
            return response.text

    def events(self, path: str, params: Mapping[str, object] | None = None) -> Iterator[SseEvent]:
        """Follow a Server-Sent Events stream until the server ends it."""
        with self._send(
            "GET", path, params=params, accept="text/event-stream", follow=True
        ) as response:
            yield from parse_sse(response.iter_lines())

    @contextmanager
    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, object] | None = None,
        body: object = None,
        accept: str | None = None,
        follow: bool = False,
    ) -> Iterator[httpx.Response]:
        import httpx

        query = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        headers = {"Accept": accept} if accept else None
        request = self._http.build_request(method, path, params=query, json=body, headers=headers)
        if follow:  # a followed stream may be quiet for as long as a step is
            request.extensions["timeout"] = httpx.Timeout(
                self._http.timeout.connect, read=None
            ).as_dict()
        try:
            response = self._http.send(request, stream=True)
        except httpx.ConnectError:
            raise ClientError(f"cannot reach the server at {self.url}") from None
        except httpx.TimeoutException:
            raise ClientError(f"the server at {self.url} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise ClientError(f"cannot talk to the server at {self.url}: {exc}") from None
        try:
            if response.is_error:
                response.read()
                raise _error_of(response)
            yield response
        except httpx.HTTPError as exc:
            raise ClientError(f"the connection to {self.url} broke: {exc}") from None
        finally:
            response.close()


def _param(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


class SseEvent:
    """One Server-Sent Event: its `event` name (default "message"), `data`, and `id`."""

    __slots__ = ("data", "event", "id")

    def __init__(self, event: str, data: str, id: str | None) -> None:
        self.event = event
        self.data = data
        self.id = id


def parse_sse(lines: Iterator[str]) -> Iterator[SseEvent]:
    """Events of a `text/event-stream` body, as the HTML standard parses them."""
    event, last_id = "", None
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield SseEvent(event or "message", "\n".join(data), last_id)
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id":
            last_id = value
    if data:
        yield SseEvent(event or "message", "\n".join(data), last_id)


@contextmanager
def connect(server: str, token: str | None) -> Iterator[ApiClient]:
    """A client for one command; a `ClientError` inside becomes one line on stderr and
    the exit status (1, or 2 for usage errors), never a traceback."""
    try:
        client = ApiClient(server, token)
        try:
            yield client
        finally:
            client.close()
    except ClientError as exc:
        fail(exc.message, exc.exit_code)


def fail(message: str, exit_code: int = 1) -> NoReturn:
    sys.stdout.flush()
    sys.stderr.write(f"shipline: error: {message}\n")
    raise typer.Exit(exit_code)


def print_json(value: object) -> None:
    """The API's own object(s), as the API sent them."""
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def items(page: object) -> list[ApiObject]:
    """The objects of a list response (`{"items": [...]}`) or of a bare list."""
    if isinstance(page, dict):
        page = page.get("items", [])
    return [x for x in page if isinstance(x, dict)] if isinstance(page, list) else []
