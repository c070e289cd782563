"""Local runs (`shipline run`): the repository, the state directory, and the wiring of one
run on this machine."""
