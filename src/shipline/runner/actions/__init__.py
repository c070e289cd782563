"""The built-in actions: `uses:` names Shipline runs in Python, without network.

`builtin_action(uses)` returns a fresh action for a `uses:` value such as
`actions/checkout@v4` (any version ref), or None when Shipline has no such action.
"""

from __future__ import annotations

from shipline.runner.actions.base import BuiltinAction
from shipline.spec.builtin_actions import BUILTIN_ACTION_NAMES

__all__ = ["BUILTIN_ACTIONS", "BuiltinAction", "builtin_action"]

BUILTIN_ACTIONS: tuple[str, ...] = BUILTIN_ACTION_NAMES


def builtin_action(uses: str) -> BuiltinAction | None:
    """The built-in action for `uses` (`owner/repo[/path]@ref`), or None."""
    name, at, version = uses.strip().partition("@")
    if not at or not version:
        return None
    # The modules load only when a workflow uses them: `shipline run` starts faster.
    from shipline.runner.actions.artifacts import DownloadArtifactAction, UploadArtifactAction
    from shipline.runner.actions.cache import CacheAction
    from shipline.runner.actions.checkout import CheckoutAction
    from shipline.runner.actions.deploy import DeployAction
    from shipline.runner.actions.setup_python import SetupPythonAction

    # GitHub treats owner and repository names case-insensitively.
    match name.lower():
        case "actions/checkout":
            return CheckoutAction()
        case "actions/setup-python":
            return SetupPythonAction()
        case "actions/cache":
            return CacheAction("both")
        case "actions/cache/restore":
            return CacheAction("restore")
        case "actions/cache/save":
            return CacheAction("save")
        case "actions/upload-artifact":
            return UploadArtifactAction()
        case "actions/download-artifact":
            return DownloadArtifactAction()
        case "shipline/deploy":
            return DeployAction()
    return None
