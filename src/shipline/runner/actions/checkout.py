"""`actions/checkout`: the repository's files at the run's commit, as a git working copy.

Inputs: `ref` (default: the run's commit, on a branch named after the run's ref when that
is a branch), `path` (inside the workspace), `fetch-depth` (1; 0 for all history and
tags), `clean` (true: remove what is in `path` first). Outputs: `ref`, `commit`.
The work is done by the injected `SourceProvider`; this module only validates inputs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from shipline.plan.trust import PRIVILEGED_EVENTS, names_pull_head
from shipline.runner.actions._common import flag, is_inside, text
from shipline.runner.ports import ActionCall, ActionFailed


def _empty_dir(folder: Path) -> None:
    # Unlink symlinks instead of following them: a link in the workspace may point at
    # anything, and only the workspace's own entries are ours to remove.
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _pull_head(call: ActionCall, ref: str) -> bool:
    """Whether `ref` names the pull request's head in a privileged run."""
    if str(call.github.get("event_name") or "") not in PRIVILEGED_EVENTS:
        return False
    event = call.github.get("event")
    pull = event.get("pull_request") if isinstance(event, dict) else None
    head = pull.get("head") if isinstance(pull, dict) else None
    head = head if isinstance(head, dict) else {}
    number = pull.get("number") if isinstance(pull, dict) else 0
    return names_pull_head(
        ref,
        str(head.get("sha") or ""),
        str(head.get("ref") or ""),
        number if isinstance(number, int) else 0,
    )


class CheckoutAction:
    """`actions/checkout@*` for the repository the run is for."""

    name = "actions/checkout"

    async def run(self, call: ActionCall) -> None:
        raw_path = text(call, "path", ".")
        dest = (call.workspace / raw_path).resolve()
        if Path(raw_path).is_absolute() or not is_inside(dest, call.workspace):
            raise ActionFailed(f"path {raw_path!r} must stay inside the workspace")
        depth_text = text(call, "fetch-depth", "1")
        try:
            depth = int(depth_text)
        except ValueError:
            raise ActionFailed(f"fetch-depth must be a number, got {depth_text!r}") from None
        if depth < 0:
            raise ActionFailed(f"fetch-depth must be 0 or more, got {depth}")
        ref = text(call, "ref")
        if ref and _pull_head(call, ref) and not call.unsafe_untrusted_code:
            raise ActionFailed(
                f"ref {ref!r} is the pull request's code, and this {call.github.get('event_name')} "
                "run is privileged (the base branch's workflow, trusted): set "
                "`unsafe_execute_untrusted_code: true` on the job to check it out anyway"
            )
        if ref:
            sha = ""  # the provider resolves the name given (a branch, tag or commit)
        else:
            sha = str(call.github.get("sha") or "")
            ref = str(call.github.get("ref") or "")
        if flag(call, "clean", True) and dest.is_dir():
            _empty_dir(dest)
        if text(call, "submodules", "false").lower() not in ("false", ""):
            call.log("Warning: submodules are not checked out by Shipline's actions/checkout")
        commit = await call.source.checkout(dest, sha=sha, ref=ref, fetch_depth=depth, log=call.log)
        call.outputs["ref"] = ref
        call.outputs["commit"] = commit

    async def post(self, call: ActionCall, job_succeeded: bool) -> None:
        # Nothing to undo: no credentials are persisted in the working copy.
        return None
