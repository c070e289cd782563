"""The protocol of built-in actions (`uses: actions/checkout@v4` and friends)."""

from __future__ import annotations

from typing import Protocol

from shipline.runner.ports import ActionCall


class BuiltinAction(Protocol):
    """An action implemented in Python, with no network.

    `run` is the step itself; `post` runs after the job's last step (in reverse order of
    the steps that ran), e.g. to save a cache once the job succeeded. Both raise
    `ActionFailed` with a message for the user; `call.state` carries data from run to post.
    """

    name: str

    async def run(self, call: ActionCall) -> None: ...

    async def post(self, call: ActionCall, job_succeeded: bool) -> None: ...
