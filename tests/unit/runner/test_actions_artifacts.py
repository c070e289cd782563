"""upload-artifact / download-artifact: GitHub's path semantics and cases 34-35."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from shipline.runner.actions.artifacts import DownloadArtifactAction, UploadArtifactAction
from shipline.runner.ports import ActionCall, ActionFailed
from shipline.store.local import LocalArtifactStore
from tests.unit.runner.action_calls import Job, Run


def write(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def upload(job: Job, **inputs: str) -> ActionCall:
    call = job.call("actions/upload-artifact@v4", inputs)
    asyncio.run(UploadArtifactAction().run(call))
    return call


def download(job: Job, **inputs: str) -> ActionCall:
    call = job.call("actions/download-artifact@v4", inputs)
    asyncio.run(DownloadArtifactAction().run(call))
    return call


def stored(job: Job, name: str = "artifact") -> list[str]:
    record = job.artifacts.get(name)
    assert record is not None
    return [f.path for f in record.files]


def test_round_trip_with_dist_semantics(tmp_path: Path) -> None:
    run = Run(tmp_path)
    build, deploy = run.job("build"), run.job("deploy")
    write(build.workspace / "dist" / "a.whl", "wheel")
    write(build.workspace / "dist" / "sub" / "b.txt", "b")
    call = upload(build, name="dist", path="dist/")
    assert stored(build, "dist") == ["a.whl", "sub/b.txt"]
    assert len(call.outputs["artifact-digest"]) == 64

    out = download(deploy, name="dist", path="dist")
    assert (deploy.workspace / "dist" / "a.whl").read_text() == "wheel"
    assert (deploy.workspace / "dist" / "sub" / "b.txt").read_text() == "b"
    assert out.outputs["download-path"] == str(deploy.workspace / "dist")


def test_single_file_is_stored_by_its_name(tmp_path: Path) -> None:
    job = Run(tmp_path).job()
    write(job.workspace / "out" / "report.html")
    upload(job, path="out/report.html")
    assert stored(job) == ["report.html"]


def test_several_paths_are_relative_to_their_common_ancestor(tmp_path: Path) -> None:
    job = Run(tmp_path).job()
    write(job.workspace / "build" / "dist" / "a.whl")
    write(job.workspace / "build" / "docs" / "index.html")
    write(job.workspace / "build" / "docs" / "notes.txt")
    upload(job, path="build/dist/*.whl\nbuild/docs/\n!build/docs/*.txt")
    assert stored(job) == ["dist/a.whl", "docs/index.html"]


def test_globs_store_relative_to_the_literal_prefix(tmp_path: Path) -> None:
    job = Run(tmp_path).job()
    write(job.workspace / "pkg" / "x" / "a.txt")
    write(job.workspace / "pkg" / "y" / "b.txt")
    write(job.workspace / "pkg" / "y" / "c.bin")
    upload(job, path="pkg/**/*.txt")
    assert stored(job) == ["x/a.txt", "y/b.txt"]


def test_hidden_files_need_opting_in(tmp_path: Path) -> None:
    run = Run(tmp_path)
    job = run.job()
    write(job.workspace / "out" / ".env", "SECRET=1")
    write(job.workspace / "out" / ".git" / "config")
    write(job.workspace / "out" / "ok.txt")
    upload(job, name="default", path="out")
    assert stored(job, "default") == ["ok.txt"]
    upload(job, name="all", path="out", **{"include-hidden-files": "true"})
    assert stored(job, "all") == [".env", ".git/config", "ok.txt"]


def test_if_no_files_found(tmp_path: Path) -> None:
    job = Run(tmp_path).job()
    upload(job, path="missing/")
    assert job.artifacts.list() == []
    assert any("No files were found" in line for line in job.logs)
    with pytest.raises(ActionFailed, match="No files were found"):
        upload(job, path="missing/", **{"if-no-files-found": "error"})
    upload(job, path="missing/", **{"if-no-files-found": "ignore"})


def test_overwrite(tmp_path: Path) -> None:
    job = Run(tmp_path).job()
    write(job.workspace / "a.txt", "1")
    upload(job, path="a.txt")
    with pytest.raises(ActionFailed, match="exists already"):
        upload(job, path="a.txt")
    write(job.workspace / "a.txt", "2")
    upload(job, path="a.txt", overwrite="true")
    download(job, name="artifact", path="got")
    assert (job.workspace / "got" / "a.txt").read_text() == "2"


def test_symlinks_leaving_the_workspace_are_not_followed(tmp_path: Path) -> None:
    """Case 35: `ln -s ~/.runner/token out.txt` uploads nothing outside the workspace."""
    job = Run(tmp_path).job()
    token = write(tmp_path / "runner" / "token", "CANARY-TOKEN")
    other = write(tmp_path / "other-project" / "secret.txt", "CANARY-OTHER")
    out = job.workspace / "out"
    write(out / "real.txt", "ok")
    (out / "token.txt").symlink_to(token)
    (out / "other").symlink_to(other.parent, target_is_directory=True)
    (out / "inside.txt").symlink_to(out / "real.txt")
    upload(job, path="out/\nout/other/secret.txt")
    assert stored(job) == ["inside.txt", "real.txt"]
    record = job.artifacts.get("artifact")
    assert record is not None
    contents = {job.artifacts.open_file(f).read_text() for f in record.files}
    assert contents == {"ok"}
    assert sum("outside the workspace" in line for line in job.logs) >= 2


def _forge_index(job: Job, paths: list[str]) -> LocalArtifactStore:
    """An artifact index tampered with in storage, pointing at a real blob."""
    sha, size = job.artifacts.blobs.put_bytes(b"PWNED")
    index = {
        "artifacts": [
            {
                "name": "evil",
                "job_key": "j",
                "files": [{"path": p, "sha256": sha, "size": size, "mode": 420} for p in paths],
            }
        ]
    }
    job.artifacts.index_path.parent.mkdir(parents=True, exist_ok=True)
    job.artifacts.index_path.write_text(json.dumps(index))
    job.artifacts = LocalArtifactStore(job.artifacts.blobs, job.artifacts.index_path.parent)
    return job.artifacts


@pytest.mark.parametrize("bad", ["../../etc/passwd", "/etc/cron.d/x", "//moo", "tmp/../../moo"])
def test_download_never_writes_outside_the_target(tmp_path: Path, bad: str) -> None:
    """Case 34: traversal entries are refused and nothing lands outside."""
    job = Run(tmp_path).job()
    _forge_index(job, ["fine.txt", bad])
    job.call("warm-up")  # creates the job's directories
    before = set(tmp_path.rglob("*"))
    with pytest.raises(ActionFailed, match="unsafe path"):
        download(job, name="evil", path="target/deeper")
    assert set(tmp_path.rglob("*")) == before  # nothing written, not even fine.txt


def test_download_refuses_to_follow_an_existing_symlink_out(tmp_path: Path) -> None:
    """Case 34: a symlink `tmp -> /outside` followed by `tmp/moo`."""
    job = Run(tmp_path).job()
    outside = tmp_path / "outside"
    outside.mkdir()
    target = job.workspace / "target"
    target.mkdir(parents=True)
    (target / "tmp").symlink_to(outside, target_is_directory=True)
    (target / "link.txt").symlink_to(tmp_path / "victim.txt")
    _forge_index(job, ["link.txt", "tmp/moo"])
    with pytest.raises(ActionFailed, match="symlink"):
        download(job, name="evil", path="target")
    assert list(outside.iterdir()) == []
    # The file link itself was replaced, not written through.
    assert not (tmp_path / "victim.txt").exists()
    assert (target / "link.txt").read_text() == "PWNED"


def test_dotted_names_are_accepted(tmp_path: Path) -> None:
    job = Run(tmp_path).job()
    _forge_index(job, ["foo..bar", ".foo"])
    download(job, name="evil", path="t")
    assert (job.workspace / "t" / "foo..bar").read_text() == "PWNED"


def test_tampered_blob_is_detected(tmp_path: Path) -> None:
    job = Run(tmp_path).job()
    write(job.workspace / "a.txt", "good")
    upload(job, path="a.txt")
    record = job.artifacts.get("artifact")
    assert record is not None
    blob = job.artifacts.open_file(record.files[0])
    blob.chmod(0o644)
    blob.write_text("evil")
    with pytest.raises(ActionFailed, match="SHA-256"):
        download(job, name="artifact", path="t")
    assert not (job.workspace / "t" / "a.txt").exists()


def test_download_all_pattern_and_merge(tmp_path: Path) -> None:
    run = Run(tmp_path)
    job = run.job()
    write(job.workspace / "one" / "a.txt", "a")
    write(job.workspace / "two" / "b.txt", "b")
    upload(job, name="logs-1", path="one/")
    upload(job, name="logs-2", path="two/")
    upload(job, name="other", path="one/")
    consumer = run.job("consumer")
    download(consumer, path="all")
    assert sorted(p.name for p in (consumer.workspace / "all").iterdir()) == [
        "logs-1",
        "logs-2",
        "other",
    ]
    assert (consumer.workspace / "all" / "logs-2" / "b.txt").read_text() == "b"
    download(consumer, pattern="logs-*", path="merged", **{"merge-multiple": "true"})
    assert sorted(p.name for p in (consumer.workspace / "merged").iterdir()) == ["a.txt", "b.txt"]


def test_download_of_an_unknown_name_fails(tmp_path: Path) -> None:
    with pytest.raises(ActionFailed, match="Artifact not found for name: nope"):
        download(Run(tmp_path).job(), name="nope")


def test_executable_bit_survives(tmp_path: Path) -> None:
    job = Run(tmp_path).job()
    tool = write(job.workspace / "bin" / "tool", "#!/bin/sh\n")
    tool.chmod(0o755)
    upload(job, path="bin/")
    download(job, name="artifact", path="got")
    assert (job.workspace / "got" / "tool").stat().st_mode & 0o111
