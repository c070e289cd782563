"""`shipline lint` checks environment files next to the workflows."""

from __future__ import annotations

import json

from tests.e2e.conftest import Repo


def test_lint_reports_environment_mistakes(repo: Repo, run) -> None:  # type: ignore[no-untyped-def]
    repo.workflow("""
        on: push
        jobs:
          deploy:
            runs-on: ubuntu-latest
            environment: production
            steps:
              - run: echo deploy
    """)
    repo.write(
        ".shipline/environments/production.yml",
        """
        target:
          local: {instances: 2, start: ./serve, ports: 9000-9099}
        traffic: {port: 8080}
        strategy:
          canary: {weights: [10, 100]}
        protection:
          reviewrs: {users: [alice]}
          allow_untrusted: true
        """,
    )
    result = run("lint", "--json")
    assert result.returncode == 1, result.stderr
    found = {(d["file"], d["line"], d["severity"], d["path"]) for d in json.loads(result.stdout)}
    env_file = ".shipline/environments/production.yml"
    assert (env_file, 8, "error", "protection.reviewrs") in found
    assert (env_file, 6, "warning", "strategy.canary.analysis") in found
    assert (env_file, 8, "warning", "protection.allow_untrusted") in found
    text = run("lint")
    assert (
        f'{env_file}:8:3: error syntax-check: unexpected key "reviewrs" for "protection" section'
        in text.stdout
    )
    assert "2 file(s) checked" in text.stderr
