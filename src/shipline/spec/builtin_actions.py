"""The actions Shipline runs itself, and what it says about any other `uses:`.

One list for lint (which warns) and the runner (which fails the step that reaches one), so
both say the same thing.
"""

from __future__ import annotations

BUILTIN_ACTION_NAMES: tuple[str, ...] = (
    "actions/cache",
    "actions/cache/restore",
    "actions/cache/save",
    "actions/checkout",
    "actions/download-artifact",
    "actions/setup-python",
    "actions/upload-artifact",
    "shipline/deploy",
)


def unknown_action_message(uses: str) -> str:
    """The message for a `uses:` that is neither built in nor local."""
    return (
        f'action "{uses}" is not built into Shipline: Shipline will fail this step at run '
        f"time if it runs (built-in actions are {', '.join(BUILTIN_ACTION_NAMES)} and local "
        "actions (./path))"
    )
