"""What the user wrote: YAML with positions, typed workflow models, expressions, lint.

Everything in this package is pure: no I/O, no clock, no environment. Callers read files
and pass their text in.
"""
