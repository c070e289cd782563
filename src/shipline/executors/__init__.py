"""Executors: how a runner runs the processes of a job's steps.

`base.Executor` is the protocol and its written contract; `shell.ShellExecutor` runs
processes directly on this machine. Only `wiring.py` picks a concrete executor.
"""
