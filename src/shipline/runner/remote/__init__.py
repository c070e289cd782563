"""The remote runner: `shipline runner` pulls jobs from servers over HTTP(S) and runs them
with the same `JobRunner` as the embedded runner. It never holds database credentials:
a runner credential to ask for work, and a per-job token for everything about one job."""
