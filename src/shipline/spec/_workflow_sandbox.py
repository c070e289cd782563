"""`jobs.<id>.sandbox`, Shipline's extension key: what a job asks of the sandbox its steps
run in. It can only tighten what the runner's policy allows (the runner decides; see
`runner/isolation.py`), so it is read here as a request:

    sandbox:
      network: off        # on | off (also true/false)
      memory: 2G          # bytes, or with a unit: K, M, G, T (binary: 1G = 1024 MiB)
      processes: 512      # processes and threads at once

Values are read before the job runs, so they cannot be expressions.
"""

from __future__ import annotations

from shipline.domain.sizes import parse_size
from shipline.spec.models import SandboxRequest
from shipline.spec.reader import Reader
from shipline.spec.yamlpos import Node, Scalar, describe

SANDBOX_KEYS = ("network", "memory", "processes")
MIN_MEMORY = 4 << 20


def read_sandbox(r: Reader, node: Node | None, path: str) -> SandboxRequest | None:
    """The job's `sandbox:` request, with errors reported through `r`; None when absent."""
    if node is None or (isinstance(node, Scalar) and node.value is None):
        return None
    mapping = r.mapping(node, path, "sandbox")
    if mapping is None:
        return None
    r.check_keys(mapping, SANDBOX_KEYS, path, "sandbox")
    for key, value in mapping.pairs:
        if isinstance(value, Scalar) and "${{" in value.text:
            r.error(
                value,
                f'"{key.text}" in "sandbox" section cannot be an expression: the runner '
                "applies it before the job starts",
                path=f"{path}.{key.text}",
            )
            return None
    return SandboxRequest(
        network=_network(r, mapping.get("network"), f"{path}.network"),
        memory=_memory(r, mapping.get("memory"), f"{path}.memory"),
        processes=_processes(r, mapping.get("processes"), f"{path}.processes"),
    )


def _network(r: Reader, node: Node | None, path: str) -> bool | None:
    if node is None:
        return None
    if isinstance(node, Scalar):
        if isinstance(node.value, bool):
            return node.value
        if isinstance(node.value, str) and node.value.lower() in ("on", "off"):
            return node.value.lower() == "on"
    r.error(
        node,
        f'"network" in "sandbox" section must be on or off, but it is {describe(node)}',
        path=path,
    )
    return None


def _memory(r: Reader, node: Node | None, path: str) -> int | None:
    if node is None:
        return None
    size = None
    if isinstance(node, Scalar) and not isinstance(node.value, bool) and node.value is not None:
        size = parse_size(node.text)
    if size is None:
        r.error(
            node,
            f'"memory" in "sandbox" section must be a size like 512M or 2G, but it is '
            f"{describe(node)}",
            path=path,
        )
        return None
    if size < MIN_MEMORY and isinstance(node, Scalar):
        r.error(
            node,
            f'"memory" in "sandbox" section must be at least 4M, but it is {node.text}',
            path=path,
            hint="a number without a unit is bytes: write 512M, not 512",
        )
        return None
    return size


def _processes(r: Reader, node: Node | None, path: str) -> int | None:
    if node is None:
        return None
    if isinstance(node, Scalar) and type(node.value) is int and node.value >= 1:
        return node.value
    r.error(
        node,
        f'"processes" in "sandbox" section must be a positive whole number, but it is '
        f"{describe(node)}",
        path=path,
    )
    return None
