"""`workflow_dispatch` inputs: what a caller gives, checked against the declared types."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from shipline.spec.models import DispatchInput


class InputError(ValueError):
    """An input that does not fit its declaration; `field` names it (None: several)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def resolve_inputs(specs: Sequence[DispatchInput], given: Mapping[str, str]) -> dict[str, object]:
    """The inputs a run sees: given values typed (boolean, number), defaults filled in.

    Raises InputError for an unknown input, a missing required one, a boolean that is not
    true/false, a number that does not parse, or a choice outside its options.
    """
    known = {s.name for s in specs}
    unknown = sorted(set(given) - known)
    if unknown:
        raise InputError(
            f"unknown input(s) {', '.join(unknown)} (inputs: {', '.join(sorted(known)) or 'none'})",
            unknown[0] if len(unknown) == 1 else None,
        )
    out: dict[str, object] = {}
    for spec in specs:
        if spec.name in given:
            raw = given[spec.name]
        elif spec.default is not None:
            raw = spec.default if isinstance(spec.default, str) else json.dumps(spec.default)
        elif spec.required:
            raise InputError(f"input {spec.name!r} is required", spec.name)
        else:
            raw = ""
        value: object = raw
        if spec.type == "boolean":
            if raw.lower() not in ("true", "false", ""):
                raise InputError(
                    f"input {spec.name!r} is a boolean: use true or false, not {raw!r}", spec.name
                )
            value = raw.lower() == "true"
        elif spec.type == "number" and raw != "":
            try:
                value = float(raw)
            except ValueError:
                raise InputError(
                    f"input {spec.name!r} is a number, not {raw!r}", spec.name
                ) from None
        elif spec.type == "choice" and raw and raw not in spec.options:
            raise InputError(
                f"input {spec.name!r} must be one of {', '.join(spec.options)}, not {raw!r}",
                spec.name,
            )
        out[spec.name] = value
    return out
