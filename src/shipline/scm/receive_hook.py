"""The pre-receive hook `git receive-pack` runs in hosted repositories: `python -m
shipline.scm.receive_hook pre-receive`.

pre-receive decides, before any ref moves, whether each ref update may go ahead under the
project's protection rules (`plan.protection`). The rules come already resolved for the
pusher in `SHIPLINE_PUSH_RULES`, an environment variable the server sets on the
`git http-backend` process it starts; the pusher controls only ref names and objects, so
cannot change them. Without the variable (a push that did not come through the server)
everything is refused. A refusal is printed as `remote: shipline: ...` in `git push`.

The post-receive hook (a shell line, see `scm.hosted`) appends the updates that happened to
the file `SHIPLINE_PUSH_REPORT` names; the server reads it when the push ends and raises
one event per ref change.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence

from shipline.plan.protection import Grant, RefUpdate, refusal

RULES_ENV = "SHIPLINE_PUSH_RULES"
REPORT_ENV = "SHIPLINE_PUSH_REPORT"
_SHA = re.compile(r"^[0-9a-f]{40}$")


def parse_updates(text: str) -> list[RefUpdate]:
    """The `<old> <new> <ref>` lines git writes to a hook's standard input."""
    updates = []
    for line in text.splitlines():
        old, new, ref = line.split(" ", 2)
        if not (_SHA.match(old) and _SHA.match(new)):
            raise ValueError(f"unexpected hook input line {line!r}")
        updates.append(RefUpdate(ref=ref, old=old, new=new))
    return updates


def _fast_forward(update: RefUpdate) -> bool | None:
    if update.created or update.deleted:
        return None
    result = subprocess.run(
        ["git", "merge-base", "--is-ancestor", "--end-of-options", update.old, update.new],
        check=False,
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )
    return result.returncode == 0


def pre_receive(updates: Sequence[RefUpdate], rules: str | None) -> list[str]:
    """The refusals of a push (empty: accept it)."""
    if rules is None:
        return ["pushes are accepted only through the Shipline server"]
    grants = [Grant.from_json(g) for g in json.loads(rules)]
    refusals = []
    for update in updates:
        reason = refusal(update, grants, fast_forward=_fast_forward(update))
        if reason is not None:
            refusals.append(f"refusing {update.ref}: {reason}")
    return refusals


def main(argv: Sequence[str]) -> int:
    stage = argv[0] if argv else ""
    updates = parse_updates(sys.stdin.read())
    if stage == "pre-receive":
        refusals = pre_receive(updates, os.environ.get(RULES_ENV))
        for line in refusals:
            print(f"shipline: {line}", file=sys.stderr)
        return 1 if refusals else 0
    print(f"shipline: unknown hook {stage!r}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
