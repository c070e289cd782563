"""Deployments' data plane: a release goes to an environment's targets with a strategy.

`controller.RolloutController` is the entry point the control plane calls (`rollout`,
`rollback`); it drives a target (`local.LocalFleet`: supervised processes behind the
environment's `router.Router`; `ssh.SshRollout`: hosts over SSH with a `current` link per
host), health checks (`health`), lifecycle hooks (`appspec`,
`hooks`) and strategies (`strategies`), and rolls back automatically on failure.
"""
