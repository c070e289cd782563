"""`actions/setup-python` with the interpreters installed on this machine (no downloads).

The action looks for CPython interpreters on PATH and in the usual places (/usr/bin,
/usr/local/bin, ~/.pyenv/versions/*/bin, /opt/python*/bin), asks each for its version,
and picks the newest that matches `python-version` (or `python-version-file`). A
virtualenv's interpreter counts as the base interpreter it was made from.

So that `python`, `python3` and `pip` all mean the chosen interpreter, it writes a small
bin directory `<tool cache>/python/<version>/bin` (symlinks to the interpreter, `pip`
scripts that run `<interpreter> -m pip`) and puts it first on PATH.

`pip install --user` goes to a per-job `PYTHONUSERBASE` under the tool cache, so jobs do
not see each other's packages and never touch the user's home. A distribution's
interpreter marked externally managed (PEP 668) refuses `--user` installs; the `pip`
scripts allow exactly those (`PIP_BREAK_SYSTEM_PACKAGES` for that command only), since
they cannot reach the system's packages. Plain `pip install` into the system stays
refused, as does `python -m pip install --user` (add `--break-system-packages`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

from shipline.runner.actions._common import flag, is_inside, lines, text
from shipline.runner.ports import ActionCall, ActionFailed

_PROBE = (
    "import json, os, sys, sysconfig, importlib.util as u\n"
    "venv = sys.prefix != sys.base_prefix\n"
    "exe = getattr(sys, '_base_executable', sys.executable) if venv else sys.executable\n"
    "print(json.dumps({'version': '%d.%d.%d' % sys.version_info[:3], 'executable': exe,\n"
    "  'prefix': sys.base_prefix, 'impl': sys.implementation.name,\n"
    "  'pip': u.find_spec('pip') is not None,\n"
    "  'managed': os.path.exists(os.path.join(sysconfig.get_path('stdlib'),\n"
    "                                         'EXTERNALLY-MANAGED'))}))\n"
)
_NAMES = re.compile(r"python(3(\.\d+)?)?")
_COMPARATOR = re.compile(r"(>=|<=|==|!=|~=|>|<)?\s*([0-9][0-9.]*(?:\.\*)?)")
_SYSTEM_BIN = frozenset({"/bin", "/usr/bin", "/usr/local/bin", "/sbin", "/usr/sbin"})
_PROBE_TIMEOUT = 10.0

Version = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Interpreter:
    """An installed CPython: its version, executable, prefix, PEP 668 and pip status."""

    version: Version
    executable: Path
    prefix: Path
    managed: bool
    has_pip: bool

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))


def _search_dirs(call: ActionCall) -> list[Path]:
    path = call.env.get("PATH") or os.environ.get("PATH", "")
    dirs = [Path(p) for p in path.split(os.pathsep) if p]
    dirs += [Path("/usr/local/bin"), Path("/usr/bin")]
    for home in dict.fromkeys([Path.home(), Path(call.env.get("HOME") or Path.home())]):
        dirs += sorted((home / ".pyenv" / "versions").glob("*/bin"))
    dirs += sorted(Path("/opt").glob("python*/bin"))
    # pyenv's shims pick a version from the current directory; the versions are
    # searched directly above. Our own bin directories only link to real ones.
    return [
        d
        for d in dict.fromkeys(dirs)
        if d.name != "shims" and "shims" not in d.parts and not is_inside(d, call.tool_cache)
    ]


def _candidates(call: ActionCall) -> list[Path]:
    found: dict[str, Path] = {}
    for folder in _search_dirs(call):
        try:
            names = sorted(p for p in folder.iterdir() if _NAMES.fullmatch(p.name))
        except OSError:
            continue
        for exe in names:
            real = os.path.realpath(exe)
            if os.access(real, os.X_OK) and Path(real).is_file():
                found.setdefault(real, exe)
    return list(found.values())


async def _probe(exe: Path) -> Interpreter | None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    try:
        proc = await asyncio.create_subprocess_exec(
            str(exe),
            "-I",
            "-c",
            _PROBE,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), _PROBE_TIMEOUT)
        info = json.loads(out)
    except (OSError, TimeoutError, ValueError):
        return None
    if proc.returncode != 0 or info.get("impl") != "cpython":
        return None
    major, minor, micro = (int(x) for x in str(info["version"]).split("."))
    return Interpreter(
        (major, minor, micro),
        Path(os.path.realpath(info["executable"])),
        Path(info["prefix"]),
        bool(info["managed"]),
        bool(info["pip"]),
    )


async def find_interpreters(call: ActionCall) -> list[Interpreter]:
    """Every installed CPython found, newest first (one entry per real executable)."""
    probed = await asyncio.gather(*(_probe(exe) for exe in _candidates(call)))
    unique = {i.executable: i for i in probed if i is not None}
    return sorted(unique.values(), key=lambda i: (i.version, str(i.executable)), reverse=True)


def _parts(text_: str) -> list[int]:
    return [int(p) for p in text_.split(".") if p.isdigit()]


def _compare(op: str, spec: str, version: Version) -> bool:
    if spec.endswith(".*"):
        wanted = _parts(spec[:-2])
        same = list(version[: len(wanted)]) == wanted
        return same if op in ("", "==") else not same if op == "!=" else False
    want = (*_parts(spec), 0, 0, 0)[:3]
    match op:
        case ">=":
            return version >= want
        case "<=":
            return version <= want
        case ">":
            return version > want
        case "<":
            return version < want
        case "!=":
            return version != want
        case "~=":
            prefix = _parts(spec)[:-1]
            return version >= want and list(version[: len(prefix)]) == prefix
    return version == want


def matches(spec: str, version: Version) -> bool:
    """Whether `version` satisfies a python-version spec: `3.11`, `3.x`, `3.11.7`,
    `>=3.10`, `>=3.10,<3.13`; a `-dev` suffix is ignored; other implementations never."""
    spec = spec.strip().lower().removesuffix("-dev")
    if not spec or spec.startswith(("pypy", "graalpy")):
        return False
    if spec[0] in "<>=!~":
        clauses = [c.strip() for c in re.split(r"[,\s]+(?=[<>=!~])", spec) if c.strip()]
        for clause in clauses:
            m = _COMPARATOR.fullmatch(clause)
            if not m or not _compare(m.group(1) or "", m.group(2), version):
                return False
        return True
    parts = spec.split(".")
    if len(parts) > 3:
        return False
    for want, have in zip(parts, version, strict=False):
        if want in ("x", "*"):
            continue
        if not want.isdigit() or int(want) != have:
            return False
    return True


def _versions_from_file(call: ActionCall, raw: str) -> list[str]:
    path = (call.workspace / raw).resolve()
    if not is_inside(path, call.workspace) or not path.is_file():
        raise ActionFailed(f"python-version-file {raw!r} not found in the workspace")
    content = path.read_text(encoding="utf-8")
    if path.name == "pyproject.toml":
        try:
            project = tomllib.loads(content).get("project", {})
        except tomllib.TOMLDecodeError as exc:
            raise ActionFailed(f"{raw}: {exc}") from None
        spec = project.get("requires-python")
        return [str(spec)] if spec else []
    words = [ln.split("#")[0].split() for ln in content.splitlines()]
    if path.name == ".tool-versions":
        return [v for w in words if w and w[0] == "python" for v in w[1:]]
    return [w[0] for w in words if w]


def _write_atomic(path: Path, *, link_to: Path | None = None, content: str = "") -> None:
    # Replace by rename: a job already running the old entry is never left with none,
    # and two jobs setting up the same version at once do not collide.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    if link_to is not None:
        tmp.symlink_to(link_to)
    else:
        tmp.write_text(content, encoding="utf-8")
        tmp.chmod(0o755)
    tmp.replace(path)


def make_bin_dir(tool_cache: Path, interp: Interpreter) -> Path:
    """The bin directory that makes python, python3, pythonX.Y and pip mean `interp`."""
    folder = tool_cache / "python" / interp.version_text / "bin"
    folder.mkdir(parents=True, exist_ok=True)
    major, minor = interp.version[:2]
    for name in ("python", "python3", f"python{major}.{minor}"):
        _write_atomic(folder / name, link_to=interp.executable)
    exe = shlex.quote(str(interp.executable))
    pip = (
        "#!/bin/sh\n"
        f"# Shipline actions/setup-python: pip of {interp.executable}\n"
        'for arg in "$@"; do\n'
        "  # --user installs go to the job's PYTHONUSERBASE, never to the system's\n"
        "  # packages that PEP 668 protects, so they are allowed.\n"
        '  if [ "$arg" = "--user" ]; then export PIP_BREAK_SYSTEM_PACKAGES=1; fi\n'
        "done\n"
        f'exec {exe} -m pip "$@"\n'
    )
    for name in ("pip", "pip3", f"pip{major}.{minor}"):
        _write_atomic(folder / name, content=pip)
    return folder


class SetupPythonAction:
    """`actions/setup-python@*` choosing among the interpreters installed here."""

    name = "actions/setup-python"

    async def run(self, call: ActionCall) -> None:
        specs = lines(call, "python-version")
        version_file = text(call, "python-version-file")
        if not specs and version_file:
            specs = _versions_from_file(call, version_file)
        elif not specs and (call.workspace / ".python-version").is_file():
            specs = _versions_from_file(call, ".python-version")
        if text(call, "cache"):
            call.log(
                f"cache: {text(call, 'cache')} is ignored: Shipline does not download "
                "packages for you; use actions/cache with pip's cache directory"
            )
        found = await find_interpreters(call)
        if not specs:
            if not found:
                raise ActionFailed("no installed Python interpreter found")
            call.log("Warning: no python-version given; using the newest installed Python")
            specs = [found[0].version_text]
        chosen = [self._choose(spec, found) for spec in specs]
        update = flag(call, "update-environment", True)
        userbase = self._userbase(call)
        for interp in chosen:  # the last one is the default, as in actions/setup-python
            bin_dir = make_bin_dir(call.tool_cache, interp)
            call.log(f"Using Python {interp.version_text} at {interp.executable}")
            if interp.managed:
                call.log(
                    "The interpreter is externally managed (PEP 668): `pip install "
                    "--user` works; system-wide installs stay refused"
                )
            if not interp.has_pip:
                call.log(f"Warning: pip is not installed for {interp.executable}")
            if update:
                interp_bin = str(interp.executable.parent)
                if interp_bin not in _SYSTEM_BIN:
                    call.path_updates.append(interp_bin)
                call.path_updates.append(str(userbase / "bin"))
                call.path_updates.append(str(bin_dir))
        last = chosen[-1]
        call.outputs["python-version"] = last.version_text
        call.outputs["python-path"] = str(last.executable)
        if update:
            call.env_updates.update(
                pythonLocation=str(last.prefix),
                Python_ROOT_DIR=str(last.prefix),
                Python3_ROOT_DIR=str(last.prefix),
                PYTHONUSERBASE=str(userbase),
            )

    @staticmethod
    def _choose(spec: str, found: list[Interpreter]) -> Interpreter:
        for interp in found:  # newest first
            if matches(spec, interp.version):
                return interp
        listing = ", ".join(f"{i.version_text} at {i.executable}" for i in found) or "none"
        raise ActionFailed(f"no installed Python matches python-version {spec} (found: {listing})")

    @staticmethod
    def _userbase(call: ActionCall) -> Path:
        # One per job: the job's temp directory is unique to it.
        job = hashlib.sha256(str(call.temp.resolve()).encode()).hexdigest()[:16]
        folder = call.tool_cache / "python-userbase" / job
        (folder / "bin").mkdir(parents=True, exist_ok=True)
        return folder

    async def post(self, call: ActionCall, job_succeeded: bool) -> None:
        return None
