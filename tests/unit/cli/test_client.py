"""The CLI's API client: requests it makes, errors as one line, SSE parsing."""

from __future__ import annotations

import json
import socket

import httpx
import pytest
import typer

from shipline.cli.client import ApiClient, ApiError, ClientError, connect, items, parse_sse
from shipline.cli.settings_flags import shown_url


def client(handler: httpx.MockTransport, token: str | None = "shp_u_x") -> ApiClient:
    return ApiClient("http://shipline.test/", token, transport=handler)


def test_requests_carry_the_token_and_the_api_prefix() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"items": [{"id": 1}], "next_cursor": None})

    page = client(httpx.MockTransport(handle)).get(
        "/projects/app/runs", {"status": None, "limit": 5, "follow": True}
    )
    assert items(page) == [{"id": 1}]
    (request,) = seen
    assert request.url.path == "/api/v1/projects/app/runs"
    assert dict(request.url.params) == {"limit": "5", "follow": "1"}
    assert request.headers["Authorization"] == "Bearer shp_u_x"


def test_no_token_sends_no_authorization_header() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        assert "Authorization" not in request.headers
        return httpx.Response(204)

    assert client(httpx.MockTransport(handle), token=None).delete("/tokens/1") is None


def test_post_sends_json() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content) == {"failed_only": True}
        return httpx.Response(201, json={"id": 3})

    assert client(httpx.MockTransport(handle)).post("/runs/3/rerun", {"failed_only": True}) == {
        "id": 3
    }


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (
            httpx.Response(
                401, json={"error": {"code": "unauthenticated", "message": "invalid credentials"}}
            ),
            "401 unauthenticated: invalid credentials",
        ),
        (
            httpx.Response(
                422,
                json={"error": {"code": "invalid", "message": "bad ref", "field": "ref"}},
            ),
            "422 invalid: bad ref (ref)",
        ),
        (httpx.Response(404, json={"detail": "Not Found"}), "404 Not Found: Not Found"),
        (httpx.Response(502, text="<html>\n bad gateway </html>"), "502 Bad Gateway: <html> bad"),
    ],
)
def test_error_responses_become_one_line(response: httpx.Response, message: str) -> None:
    api = client(httpx.MockTransport(lambda _: response))
    with pytest.raises(ApiError) as info:
        api.get("/projects")
    assert info.value.message.startswith(message)
    assert "\n" not in info.value.message
    assert info.value.status == response.status_code


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_server_is_a_clear_message() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ClientError) as info:
        ApiClient(url, None).get("/projects")
    assert info.value.message == f"cannot reach the server at {url}"


def test_connect_turns_errors_into_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit) as info, connect("ftp://nowhere", None):
        pass
    assert info.value.exit_code == 2
    assert "http:// or https://" in capsys.readouterr().err
    with pytest.raises(typer.Exit) as info, connect("http://x", None):
        raise ApiError(403, "forbidden", "not allowed")
    assert info.value.exit_code == 1
    assert capsys.readouterr().err == "shipline: error: 403 forbidden: not allowed\n"


def test_sse_events_are_parsed_as_the_standard_says() -> None:
    lines = [
        ": keep-alive",
        "",
        "id: 4",
        "event: log",
        'data: {"seq": 4,',
        'data: "text": "hi"}',
        "",
        "data:no space",
        "",
        "event: status",
        'data: {"status": "completed"}',
    ]
    events = list(parse_sse(iter(lines)))
    assert [(e.event, e.id) for e in events] == [("log", "4"), ("message", "4"), ("status", "4")]
    assert json.loads(events[0].data) == {"seq": 4, "text": "hi"}
    assert events[1].data == "no space"


def test_stream_follows_events() -> None:
    body = b'id: 0\nevent: log\ndata: {"seq": 0, "text": "a\\n"}\n\nevent: status\ndata: {}\n\n'

    def handle(request: httpx.Request) -> httpx.Response:
        assert request.headers["Accept"] == "text/event-stream"
        return httpx.Response(200, content=body, headers={"Content-Type": "text/event-stream"})

    events = list(client(httpx.MockTransport(handle)).events("/runs/1/jobs/1/logs"))
    assert [e.event for e in events] == ["log", "status"]


def test_database_passwords_are_not_shown() -> None:
    assert shown_url("postgresql+psycopg://ci:s3cret@db:5432/x") == (
        "postgresql+psycopg://ci:***@db:5432/x"
    )
    assert shown_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
