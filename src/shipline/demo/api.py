"""The few REST API calls the demo makes, over httpx; errors become `ApiError` with the
server's own message."""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["Api", "ApiError"]

# Password hashing is slow on purpose, and a busy machine is slower still.
TIMEOUT = 60.0


class ApiError(Exception):
    """A request the server refused or could not answer."""


class Api:
    """A client of `/api/v1` with one bearer token."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self._client = httpx.Client(
            base_url=f"{base_url}/api/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=TIMEOUT,
        )

    def close(self) -> None:
        self._client.close()

    def as_user(self, token: str) -> Api:
        return Api(self.base_url, token)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = self._client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise ApiError(f"{method} {path}: {exc}") from exc
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:200]
            raise ApiError(f"{method} {path}: {response.status_code} {message}")
        return response.json() if response.content else None

    # -- the calls ------------------------------------------------------------------------

    def create_user(self, name: str, password: str, *, is_admin: bool = False) -> None:
        self.call("POST", "/users", {"name": name, "password": password, "is_admin": is_admin})

    def login(self, name: str, password: str) -> str:
        """A session token for the user."""
        token: str = self.call("POST", "/login", {"name": name, "password": password})["token"]
        return token

    def create_token(self, name: str) -> str:
        """A new API token of the caller."""
        token: str = self.call("POST", "/tokens", {"name": name})["token"]
        return token

    def create_project(self, name: str) -> None:
        self.call("POST", "/projects", {"name": name, "repository": "hosted"})

    def add_member(self, project: str, user: str, role: str) -> None:
        self.call("PUT", f"/projects/{project}/members/{user}", {"role": role})

    def runs(self, project: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.call("GET", f"/projects/{project}/runs")["items"]
        return items

    def run(self, run_id: int) -> dict[str, Any]:
        run: dict[str, Any] = self.call("GET", f"/runs/{run_id}")
        return run

    def approve(self, run_id: int, environment: str, comment: str) -> None:
        self.call(
            "POST", f"/runs/{run_id}/environments/{environment}/approve", {"comment": comment}
        )

    def deployments(self, project: str, environment: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.call(
            "GET", f"/projects/{project}/deployments?environment={environment}"
        )["items"]
        return items

    def progress(self, deployment_id: int, after: int) -> tuple[list[str], int]:
        """A deployment's progress lines after `after`, and the `after` of the next call."""
        answer = self.call("GET", f"/deployments/{deployment_id}/progress?after={after}")
        return [str(line) for line in answer["lines"]], int(answer["seq"])
