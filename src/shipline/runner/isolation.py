"""What a job's steps may use, decided by the runner: its policy, the run's trust and the
job's `sandbox:` request, which can only tighten the policy.

    policy (runner/admin)       trusted runs: network on; untrusted runs: network off;
                                memory and process limits per job
    trust (server, per run)     picks the network default
    sandbox: (the workflow)     may turn the network off, lower the limits; never loosen

A request the policy does not allow is not an error (the workflow may run on runners with
different policies): the job runs within the policy and its log says what was refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from shipline.domain.records import Trust
from shipline.domain.sizes import format_size
from shipline.executors.base import Isolation
from shipline.spec.models import SandboxRequest


@dataclass(frozen=True, slots=True)
class SandboxPolicy:
    """A runner's isolation policy. `memory` and `processes` are each job's limits (and
    the most a job may ask for); None means no limit of the runner's own."""

    trusted_network: bool = True
    untrusted_network: bool = False
    memory: int | None = None
    processes: int | None = 4096


def isolation_for(
    policy: SandboxPolicy, trust: Trust, request: SandboxRequest | None
) -> tuple[Isolation, list[str]]:
    """The job's isolation, and a warning per part of its request the policy refused."""
    network = policy.trusted_network if trust is Trust.TRUSTED else policy.untrusted_network
    memory, processes = policy.memory, policy.processes
    warnings: list[str] = []
    if request is None:
        return Isolation(network, memory, processes), warnings
    if request.network is not None:
        if request.network and not network:
            warnings.append(
                f"sandbox.network: on was not granted: this runner's policy keeps the network "
                f"off for {trust.value} runs"
            )
        network = network and request.network
    if request.memory is not None:
        if memory is not None and request.memory > memory:
            warnings.append(
                f"sandbox.memory: {format_size(request.memory)} is more than this runner "
                f"allows; the limit stays {format_size(memory)}"
            )
        else:
            memory = request.memory
    if request.processes is not None:
        if processes is not None and request.processes > processes:
            warnings.append(
                f"sandbox.processes: {request.processes} is more than this runner allows; "
                f"the limit stays {processes}"
            )
        else:
            processes = request.processes
    return Isolation(network, memory, processes), warnings
