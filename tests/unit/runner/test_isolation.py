"""`isolation_for`: the runner's policy, the run's trust and the job's request."""

from __future__ import annotations

from shipline.domain.records import Trust
from shipline.executors.base import Isolation
from shipline.runner.isolation import SandboxPolicy, isolation_for
from shipline.spec.models import SandboxRequest

POLICY = SandboxPolicy(memory=4 << 30, processes=1024)


def test_without_a_request_the_trust_picks_the_network() -> None:
    assert isolation_for(POLICY, Trust.TRUSTED, None) == (Isolation(True, 4 << 30, 1024), [])
    assert isolation_for(POLICY, Trust.UNTRUSTED, None) == (Isolation(False, 4 << 30, 1024), [])


def test_a_request_can_tighten_everything() -> None:
    request = SandboxRequest(network=False, memory=1 << 30, processes=64)
    assert isolation_for(POLICY, Trust.TRUSTED, request) == (Isolation(False, 1 << 30, 64), [])


def test_a_request_cannot_loosen_anything_and_each_refusal_is_said() -> None:
    request = SandboxRequest(network=True, memory=8 << 30, processes=5000)
    isolation, warnings = isolation_for(POLICY, Trust.UNTRUSTED, request)
    assert isolation == Isolation(False, 4 << 30, 1024)
    assert len(warnings) == 3
    assert "network off for untrusted runs" in warnings[0]
    assert "8 GiB is more than this runner allows; the limit stays 4 GiB" in warnings[1]
    assert "5000" in warnings[2]


def test_a_policy_without_limits_takes_the_jobs() -> None:
    open_policy = SandboxPolicy(memory=None, processes=None)
    request = SandboxRequest(memory=2 << 30, processes=100)
    assert isolation_for(open_policy, Trust.TRUSTED, request) == (
        Isolation(True, 2 << 30, 100),
        [],
    )
