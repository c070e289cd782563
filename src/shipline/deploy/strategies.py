"""The four strategies, as sequences of `Rollout` operations on a `local` target.

Every strategy starts new instances before it retires old ones, so the environment never
serves with less than its full number of instances and a failed batch can be undone by
routing back to instances that still run:

- `all-at-once`: start every new instance, switch all traffic, retire the old set.
- `rolling`: per batch (`batch_size`, or `batch_percent` of the instances): start the
  batch, add it to the router, retire as many old instances; after each batch at least
  `min_healthy` instances must be healthy.
- `blue-green`: start the new set, check it, switch traffic atomically, keep the old set
  warm for `keep_old` seconds (rollback is one router update), then retire it.
- `canary`: start the new set, shift traffic by `weights` (10 -> 50 -> 100), baking and
  running the analysis between steps, then retire the old set.
"""

from __future__ import annotations

import math

from shipline.deploy import health
from shipline.deploy.batch import Rollout
from shipline.deploy.types import DeployFailure


async def run(rollout: Rollout) -> None:
    """Run the environment's strategy; raises `DeployFailure` when a batch fails."""
    kind = rollout.environment.strategy.kind
    if kind == "rolling":
        await rolling(rollout)
    elif kind == "blue-green":
        await blue_green(rollout)
    elif kind == "canary":
        await canary(rollout)
    else:
        await all_at_once(rollout)


async def all_at_once(rollout: Rollout) -> None:
    await rollout.start_batch(rollout.target.instances)
    await rollout.route_split(100)
    await rollout.retire(list(rollout.old))


async def blue_green(rollout: Rollout) -> None:
    await rollout.start_batch(rollout.target.instances)
    await rollout.route_split(100)
    keep = rollout.environment.strategy.keep_old
    if rollout.old and keep > 0:
        rollout.progress(f"keeping the previous set warm for {keep:g}s")
        await rollout.watch(keep)
    await rollout.retire(list(rollout.old))


async def rolling(rollout: Rollout) -> None:
    strategy = rollout.environment.strategy
    total = rollout.target.instances
    if strategy.batch_percent is not None:
        batch = max(1, math.floor(total * strategy.batch_percent / 100))
    else:
        batch = max(1, strategy.batch_size or 1)
    min_healthy = strategy.min_healthy if strategy.min_healthy is not None else total - batch
    started = 0
    number = 0
    while started < total:
        size = min(batch, total - started)
        number += 1
        rollout.progress(f"batch {number}: {size} instance(s)")
        await rollout.start_batch(size)
        started += size
        weights = {i.id: 1.0 for i in rollout.old[size:]}
        weights.update(dict.fromkeys(rollout.new, 1.0))
        await rollout.route(weights)
        await rollout.retire(rollout.old[:size])
        await _check_min_healthy(rollout, min_healthy)


async def _check_min_healthy(rollout: Rollout, min_healthy: int) -> None:
    spec = rollout.environment.health
    ports = [i.port for i in rollout.old] + list(rollout.new.values())
    results = [await health.check_once(spec, p, rollout.release.directory) for p in ports]
    healthy = sum(1 for r in results if r is None)
    # A first deployment has nothing old serving: it cannot have more than it started.
    required = min(min_healthy, len(ports))
    if healthy < required:
        raise DeployFailure(
            "health",
            f"only {healthy} healthy instance(s) after the batch; min_healthy is {required}",
        )


async def canary(rollout: Rollout) -> None:
    strategy = rollout.environment.strategy
    await rollout.start_batch(rollout.target.instances)
    for weight in strategy.weights:
        await rollout.route_split(weight)
        if weight < 100 and rollout.old:
            rollout.progress(f"baking {strategy.bake:g}s at {weight}%")
            await rollout.watch(strategy.bake, strategy.analysis)
    await rollout.retire(list(rollout.old))
