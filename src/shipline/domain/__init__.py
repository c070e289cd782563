"""The words every layer shares: statuses, conclusions and errors.

Nothing here performs I/O; every other package may import it.
"""
