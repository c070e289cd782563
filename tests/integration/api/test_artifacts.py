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
    store = context.artifacts(run["id"])
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
