"""A run's artifacts over HTTP: list with digests, the zip, one file; access is checked."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

from tests.integration.api.conftest import Api


def test_artifacts_are_listed_and_downloaded(api: Api, tmp_path: Path) -> None:
    api.project()
    run = api.client.post(
        "/api/v1/projects/app/runs", json={"workflow": "ci.yml"}, headers=api.auth()
    ).json()["items"][0]
    context = api.client.app.state.services.context  # type: ignore[attr-defined]
    store = context.artifacts(run["id"], 1)
    wheel = tmp_path / "app-1.0-py3-none-any.whl"
    wheel.write_bytes(b"wheel bytes")
    notes = tmp_path / "NOTES.txt"
    notes.write_text("notes\n")
    store.put("dist", "build", [("app-1.0-py3-none-any.whl", wheel), ("docs/NOTES.txt", notes)])

    listed = api.client.get(f"/api/v1/runs/{run['id']}/artifacts", headers=api.auth())
    assert listed.status_code == 200, listed.text
    (artifact,) = listed.json()["items"]
    assert artifact["name"] == "dist" and artifact["job"] == "build"
    files = {f["path"]: f for f in artifact["files"]}
    assert files["app-1.0-py3-none-any.whl"]["sha256"] == hashlib.sha256(b"wheel bytes").hexdigest()

    archive = api.client.get(f"/api/v1/runs/{run['id']}/artifacts/dist", headers=api.auth())
    assert archive.status_code == 200
    with zipfile.ZipFile(io.BytesIO(archive.content)) as z:
        assert sorted(z.namelist()) == ["app-1.0-py3-none-any.whl", "docs/NOTES.txt"]
        assert z.read("docs/NOTES.txt") == b"notes\n"

    one = api.client.get(
        f"/api/v1/runs/{run['id']}/artifacts/dist/files/docs/NOTES.txt", headers=api.auth()
    )
    assert one.status_code == 200 and one.content == b"notes\n"
    assert one.headers["X-Content-SHA256"] == hashlib.sha256(b"notes\n").hexdigest()

    missing = api.client.get(f"/api/v1/runs/{run['id']}/artifacts/nope", headers=api.auth())
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    anonymous = api.client.get(f"/api/v1/runs/{run['id']}/artifacts")
    assert anonymous.status_code == 401


def test_a_rerun_keeps_the_artifacts_of_earlier_attempts(api: Api, tmp_path: Path) -> None:
    api.project()
    run = api.client.post(
        "/api/v1/projects/app/runs", json={"workflow": "ci.yml"}, headers=api.auth()
    ).json()["items"][0]
    context = api.client.app.state.services.context  # type: ignore[attr-defined]
    first = tmp_path / "first.txt"
    first.write_text("attempt 1\n")
    context.artifacts(run["id"], 1).put("report", "build", [("report.txt", first)])
    cancelled = api.client.post(f"/api/v1/runs/{run['id']}/cancel", headers=api.auth())
    assert cancelled.status_code == 200, cancelled.text
    rerun = api.client.post(f"/api/v1/runs/{run['id']}/rerun", json={}, headers=api.auth())
    assert rerun.status_code == 200 and rerun.json()["attempt"] == 2, rerun.text
    second = tmp_path / "second.txt"
    second.write_text("attempt 2\n")
    # The same name in attempt 2, as a re-run's job uploads it: no conflict, no overwrite.
    context.artifacts(run["id"], 2).put("report", "build", [("report.txt", second)])

    def report(query: str) -> bytes:
        url = f"/api/v1/runs/{run['id']}/artifacts/report/files/report.txt{query}"
        response = api.client.get(url, headers=api.auth())
        assert response.status_code == 200, response.text
        return response.content

    assert report("") == b"attempt 2\n"  # the current attempt by default
    assert report("?attempt=2") == b"attempt 2\n"
    assert report("?attempt=1") == b"attempt 1\n"
    listed = api.client.get(f"/api/v1/runs/{run['id']}/artifacts?attempt=1", headers=api.auth())
    assert [a["name"] for a in listed.json()["items"]] == ["report"]
    beyond = api.client.get(f"/api/v1/runs/{run['id']}/artifacts?attempt=3", headers=api.auth())
    assert beyond.status_code == 404


def test_caches_are_listed_per_project(api: Api, tmp_path: Path) -> None:
    from shipline.store.blobs import BlobStore
    from shipline.store.local import LocalCacheStore

    api.project()
    caches = LocalCacheStore(BlobStore(tmp_path / "blobs"), tmp_path / "caches.json")
    archive = tmp_path / "deps.tgz"
    archive.write_bytes(b"archive")
    caches.save("deps-abc", "v1", "app@refs/heads/main", archive)
    caches.save("deps-other", "v1", "elsewhere@refs/heads/main", archive)
    listed = api.client.get("/api/v1/projects/app/caches", headers=api.auth())
    assert listed.status_code == 200, listed.text
    assert [c["key"] for c in listed.json()["items"]] == ["deps-abc"]
    assert listed.json()["items"][0]["scope"] == "app@refs/heads/main"
    assert api.client.get("/api/v1/projects/nope/caches", headers=api.auth()).status_code == 404
