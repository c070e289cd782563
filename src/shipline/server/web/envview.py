"""What an environment file declares, in words for the environments page: its targets, the
strategy, the health check, the traffic router, automatic rollback and the protection
rules. The file is the one the server reads from the default branch (through
`DeploymentService.environment_files`); an unusable file is shown with its errors."""

from __future__ import annotations

from dataclasses import dataclass

from shipline.engine.environment_files import EnvironmentFile
from shipline.spec.environment_models import (
    CommandCheck,
    EnvironmentSpec,
    LocalTarget,
    ProtectionRules,
    StrategySpec,
)

__all__ = ["Declared", "declared"]


@dataclass(frozen=True, slots=True)
class Declared:
    """Facts as `(label, text)` pairs, the file's path, and what made it unusable."""

    path: str
    facts: tuple[tuple[str, str], ...]
    problem: str = ""
    url: str | None = None


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _targets(spec: EnvironmentSpec) -> str:
    target = spec.target
    if isinstance(target, LocalTarget):
        count = f"{target.instances} instance{'' if target.instances == 1 else 's'}"
        ports = f"ports {target.ports.first}–{target.ports.last}"
        return f"local processes: {count} of `{target.start}`, {ports}"
    hosts = ", ".join(host.name for host in target.hosts)
    return f"SSH: {hosts} (as {target.user}, into {target.path})"


def _strategy(strategy: StrategySpec) -> str:
    parts = [strategy.kind]
    if strategy.batch_size is not None:
        parts.append(f"{strategy.batch_size} at a time")
    if strategy.batch_percent is not None:
        parts.append(f"{strategy.batch_percent} % at a time")
    if strategy.min_healthy is not None:
        parts.append(f"at least {strategy.min_healthy} healthy")
    if strategy.weights:
        parts.append("weights " + " → ".join(f"{w} %" for w in strategy.weights))
    if strategy.bake:
        parts.append(f"bake {_seconds(strategy.bake)}")
    if strategy.analysis is not None and strategy.analysis.max_error_rate is not None:
        parts.append(f"analysis: error rate at most {strategy.analysis.max_error_rate:g}")
    return ", ".join(parts)


def _health(spec: EnvironmentSpec) -> str:
    health = spec.health
    if isinstance(health.check, CommandCheck):
        check = f"command `{health.check.run}` exits 0"
    else:
        check = f"HTTP GET {health.check.path} answers {health.check.status}"
    return (
        f"{check}, every {_seconds(health.interval)}; healthy after "
        f"{health.healthy_threshold}, unhealthy after {health.unhealthy_threshold} in a row"
    )


def _protection(rules: ProtectionRules) -> str:
    parts: list[str] = []
    if rules.reviewers is not None:
        who = [*rules.reviewers.users, *(f"role {r}" for r in rules.reviewers.roles)]
        parts.append(f"{rules.reviewers.required} approval(s) from {', '.join(who) or 'admins'}")
        if rules.prevent_self_review:
            parts.append("not by whoever started the run")
    if rules.branches is not None:
        parts.append("branches " + ", ".join(rules.branches))
    if rules.tags is not None:
        parts.append("tags " + ", ".join(rules.tags))
    if rules.wait_timer:
        parts.append(f"wait {_seconds(rules.wait_timer)} after approval")
    if rules.freeze:
        parts.append(f"{len(rules.freeze)} freeze window(s)")
    return "; ".join(parts) or "none: any trusted run may deploy"


def declared(file: EnvironmentFile | str) -> Declared:
    """The page's view of an environment file (or of why it could not be read)."""
    if isinstance(file, str):
        return Declared("", (), file)
    spec = file.spec
    protection = ("Protection", _protection(spec.protection))
    facts = [("Targets", _targets(spec)), ("Strategy", _strategy(spec.strategy))]
    facts.append(("Health check", _health(spec)))
    if spec.traffic is not None:
        facts.append(("Traffic router", f"{spec.traffic.host}:{spec.traffic.port}"))
    rollback = spec.rollback
    facts.append(
        (
            "Automatic rollback",
            f"on {', '.join(rollback.on)}" if rollback.automatic else "off",
        )
    )
    facts.append(protection)
    return Declared(file.path, tuple(facts), url=spec.url)
