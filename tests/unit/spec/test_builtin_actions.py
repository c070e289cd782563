"""Lint and the runner know the same built-in actions and say the same of others."""

from shipline.runner.actions import BUILTIN_ACTIONS, builtin_action
from shipline.spec.builtin_actions import BUILTIN_ACTION_NAMES, unknown_action_message
from shipline.spec.lint.actions import BUILTIN_ACTIONS as LINT_ACTIONS


def test_one_list_of_builtin_actions() -> None:
    assert set(LINT_ACTIONS) == set(BUILTIN_ACTION_NAMES) == set(BUILTIN_ACTIONS)
    for name in BUILTIN_ACTION_NAMES:
        assert builtin_action(f"{name}@v4") is not None, name


def test_the_message_names_the_action_and_the_alternatives() -> None:
    message = unknown_action_message("codecov/codecov-action@v4")
    assert '"codecov/codecov-action@v4"' in message
    assert "actions/checkout" in message and "./path" in message
