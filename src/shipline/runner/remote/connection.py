"""The runner's HTTP connection to its servers: retries with backoff and jitter, and
failover between the servers it was given.

A network error, a timeout or a 5xx/429 answer is retried (the next server first, then
the same ones again after a growing, jittered delay) until it succeeds or the caller's
`give_up` says to stop; any other 4xx is `Refused` at once: the server has decided.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx

API = "/api/v1"
BACKOFF_BASE = 0.2
BACKOFF_CAP = 10.0


class Refused(Exception):
    """The server refused the request (4xx): `status` and its message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class GaveUp(Exception):
    """The request was not retried any further (`give_up` said so)."""


def backoff(attempt: int, rng: random.Random) -> float:
    """Full jitter: a random delay up to an exponentially growing cap."""
    return rng.uniform(BACKOFF_BASE / 2, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
        return str(body["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.reason_phrase or "refused"


class _Servers:
    def __init__(self, urls: Sequence[str], rng: random.Random) -> None:
        if not urls:
            raise ValueError("no server URL")
        self.urls = [u.rstrip("/") for u in urls]
        # Runners given the same servers spread over them.
        self.current = rng.randrange(len(self.urls))

    def url(self, path: str) -> str:
        return f"{self.urls[self.current]}{API}{path}"

    def next(self) -> None:
        self.current = (self.current + 1) % len(self.urls)


def _retry(response: httpx.Response) -> bool:
    return response.status_code >= 500 or response.status_code == 429


class Connection:
    """Async requests to the servers, authenticated with the runner credential unless a
    job token is given."""

    def __init__(
        self, urls: Sequence[str], credential: str, *, rng: random.Random | None = None
    ) -> None:
        self.rng = rng or random.Random()
        self.servers = _Servers(urls, self.rng)
        self.credential = credential
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0))

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        timeout: float = 30.0,
        give_up: Callable[[], bool] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        headers = {**(headers or {}), "Authorization": f"Bearer {token or self.credential}"}
        attempt = 0
        while True:
            try:
                response = await self.client.request(
                    method, self.servers.url(path), json=json, headers=headers, timeout=timeout
                )
            except httpx.TransportError:
                response = None
            if response is not None and not _retry(response):
                if response.status_code >= 400:
                    raise Refused(response.status_code, _message(response))
                return response
            self.servers.next()
            if give_up is not None and give_up():
                raise GaveUp(path)
            await asyncio.sleep(backoff(attempt, self.rng))
            attempt = min(attempt + 1, 10)

    async def close(self) -> None:
        await self.client.aclose()


class SyncConnection:
    """Blocking requests (artifact and cache stores are called synchronously), with the
    same retries; at most `attempts` tries."""

    def __init__(
        self,
        urls: Sequence[str],
        token: str,
        *,
        attempts: int = 8,
        rng: random.Random | None = None,
    ) -> None:
        self.rng = rng or random.Random()
        self.servers = _Servers(urls, self.rng)
        self.token = token
        self.attempts = attempts
        # Made on the first call: most jobs never use it (no checkout, artifact or cache),
        # and a client costs milliseconds of CPU (its TLS context).
        self._client: httpx.Client | None = None

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(timeout=httpx.Timeout(300.0, connect=5.0))
        return self._client

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        for attempt in range(self.attempts):
            try:
                response = self.client.request(
                    method, self.servers.url(path), headers=headers, **kwargs
                )
            except httpx.TransportError:
                response = None
            if response is not None and not _retry(response):
                if response.status_code >= 400:
                    raise Refused(response.status_code, _message(response))
                return response
            self.servers.next()
            time.sleep(backoff(attempt, self.rng))
        raise GaveUp(path)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
