"""The runner's stores over HTTP, for one job: artifacts and caches of the job's run on the
server, and the repository's source as a git bundle fetched from the server.

Files go up as blobs named by their SHA-256 (the server hashes them again and refuses a
mismatch); downloads are checked against their digest before use.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from shipline.domain.artifacts import ActionFailed, ArtifactFile, ArtifactRecord, CacheEntry
from shipline.runner.remote.connection import GaveUp, Refused, SyncConnection
from shipline.scm.git_checkout import GitSourceProvider

_CHUNK = 1024 * 1024


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class JobFilesClient:
    """Blob upload and download for one job, cached under `cache_dir` by digest."""

    def __init__(self, conn: SyncConnection, job_id: int, cache_dir: Path) -> None:
        self.conn = conn
        self.base = f"/runner/jobs/{job_id}"
        self.cache_dir = cache_dir

    def upload(self, path: Path) -> tuple[str, int]:
        sha = sha256_of(path)
        with path.open("rb") as handle:
            self.conn.call("PUT", f"{self.base}/blobs/{sha}", content=handle.read())
        return sha, path.stat().st_size

    def download(self, sha: str) -> Path:
        dest = self.cache_dir / sha
        if dest.is_file():
            return dest
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        part = dest.with_suffix(".part")
        response = self.conn.call("GET", f"{self.base}/blobs/{sha}")
        part.write_bytes(response.content)
        if sha256_of(part) != sha:
            part.unlink(missing_ok=True)
            raise ActionFailed(f"blob {sha} arrived corrupted")
        part.replace(dest)
        return dest


def _record(raw: dict[str, object]) -> ArtifactRecord:
    files = raw.get("files")
    assert isinstance(files, list)
    return ArtifactRecord(
        str(raw["name"]),
        tuple(
            ArtifactFile(str(f["path"]), str(f["sha256"]), int(f["size"]), int(f["mode"]))
            for f in files
        ),
        str(raw["job_key"]),
    )


class HttpArtifactStore:
    """`ArtifactStore` of the job's run, on the server."""

    def __init__(self, files: JobFilesClient) -> None:
        self.files = files

    def put(
        self, name: str, job_key: str, files: Sequence[tuple[str, Path]], *, overwrite: bool = False
    ) -> ArtifactRecord:
        listed = []
        for rel, local in files:
            sha, size = self.files.upload(local)
            mode = 0o755 if local.stat().st_mode & 0o111 else 0o644
            listed.append({"path": rel, "sha256": sha, "size": size, "mode": mode})
        body = {"name": name, "files": listed, "overwrite": overwrite}
        try:
            response = self.files.conn.call("POST", f"{self.files.base}/artifacts", json=body)
        except Refused as exc:
            raise ValueError(exc.message) from exc
        return _record(response.json())

    def get(self, name: str) -> ArtifactRecord | None:
        try:
            response = self.files.conn.call("GET", f"{self.files.base}/artifacts/{name}")
        except Refused as exc:
            if exc.status == 404:
                return None
            raise ActionFailed(exc.message) from exc
        return _record(response.json())

    def list(self) -> list[ArtifactRecord]:
        response = self.files.conn.call("GET", f"{self.files.base}/artifacts")
        return [_record(raw) for raw in response.json()]

    def open_file(self, file: ArtifactFile) -> Path:
        return self.files.download(file.sha256)


def _entry(raw: object) -> CacheEntry | None:
    if not isinstance(raw, dict):
        return None
    return CacheEntry(str(raw["key"]), str(raw["version"]), str(raw["sha256"]), int(raw["size"]))


class HttpCacheStore:
    """`CacheStore` on the server; the scope is the server's to decide (the runner's is
    ignored), so a job reaches only the caches of its own run's ref."""

    def __init__(self, files: JobFilesClient) -> None:
        self.files = files

    def lookup(self, keys: Sequence[str], version: str, scope: str) -> CacheEntry | None:
        body = {"keys": list(keys), "version": version}
        response = self.files.conn.call("POST", f"{self.files.base}/caches/lookup", json=body)
        return _entry(response.json())

    def save(self, key: str, version: str, scope: str, archive: Path) -> CacheEntry | None:
        sha, _ = self.files.upload(archive)
        body = {"key": key, "version": version, "sha256": sha}
        try:
            response = self.files.conn.call("POST", f"{self.files.base}/caches", json=body)
        except Refused as exc:
            raise ValueError(exc.message) from exc
        return _entry(response.json())

    def open_entry(self, entry: CacheEntry) -> Path:
        return self.files.download(entry.blob)


class BundleSource:
    """`SourceProvider` of a remote job: the server's git bundle of the repository is
    fetched once into a local bare repository, then checked out as on the server."""

    def __init__(self, files: JobFilesClient, repo_dir: Path, *, git: str = "git") -> None:
        self.files = files
        self.repo_dir = repo_dir
        self.git = git

    def _fetch(self) -> None:
        if (self.repo_dir / "HEAD").exists():
            return
        bundle = self.repo_dir.with_suffix(".bundle")
        bundle.parent.mkdir(parents=True, exist_ok=True)
        try:
            response = self.files.conn.call("GET", f"{self.files.base}/source")
        except (Refused, GaveUp) as exc:
            raise ActionFailed(f"cannot fetch the source from the server: {exc}") from exc
        bundle.write_bytes(response.content)
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, LC_ALL="C")
        tmp = self.repo_dir.with_suffix(".tmp")
        for args in (
            ["init", "--bare", "--quiet", "--template=", str(tmp)],
            ["-C", str(tmp), "fetch", "--quiet", str(bundle), "+refs/*:refs/*"],
        ):
            done = subprocess.run(
                [self.git, *args],
                env=env,
                capture_output=True,
                check=False,
                stdin=subprocess.DEVNULL,
            )
            if done.returncode != 0:
                message = done.stderr.decode(errors="replace").strip()
                raise ActionFailed(f"git {args[0]} of the server's bundle failed: {message}")
        tmp.replace(self.repo_dir)
        bundle.unlink(missing_ok=True)

    async def checkout(
        self, dest: Path, *, sha: str, ref: str, fetch_depth: int, log: Callable[[str], None]
    ) -> str:
        import asyncio

        await asyncio.to_thread(self._fetch)
        provider = GitSourceProvider(self.repo_dir, git=self.git)
        return await provider.checkout(dest, sha=sha, ref=ref, fetch_depth=fetch_depth, log=log)
