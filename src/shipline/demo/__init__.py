"""`shipline demo`: the whole path from `git push` to production on this machine.

The demo drives a `shipline server` from the outside, as a user would: it starts the
server as a child process, sets it up through the REST API, pushes the packaged demo
repository (`project/`) with the real `git` client, follows the run, approves production
when asked to, checks the deployed services, and stops everything it started. It uses no
engine, store or wiring of its own; `project/` is a copy of `examples/webapp`'s service
with its tests, a linter, a workflow and two environments.
"""
