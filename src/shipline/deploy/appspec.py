"""AWS CodeDeploy AppSpec files (version 0.0, EC2/on-premises) with CodeDeploy's semantics.

`parse_appspec` reads the file as the CodeDeploy agent does and raises `AppSpecError` with
the agent's own message for every mistake it rejects: empty file, version other than
"0.0", os other than linux/windows, a hook script without `location` or with a non-numeric
`timeout` (default 3600 s), `files` entries missing a source or destination,
`file_exists_behavior` other than DISALLOW/OVERWRITE/RETAIN, and `permissions` (object,
pattern, except, type, owner, group, mode, POSIX ACL entries, SELinux context ranges).

ECS and Lambda AppSpecs (`Resources:`) are recognised and read, but only EC2/on-premises
files drive the hooks of a Shipline deployment (`AppSpec.platform == "server"`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from shipline.spec.environment_models import HookScript
from shipline.spec.yamlpos import Mapping, Node, Scalar, Sequence, parse_yaml, to_python

LIFECYCLE_EVENTS = (
    "ApplicationStop",
    "BeforeInstall",
    "AfterInstall",
    "ApplicationStart",
    "ValidateService",
)
FILE_EXISTS = ("DISALLOW", "OVERWRITE", "RETAIN")
_FAILED = "The deployment failed because"


class AppSpecError(Exception):
    """The AppSpec file is invalid; the message is CodeDeploy's."""


@dataclass(frozen=True, slots=True)
class FileMapping:
    source: str
    destination: str


@dataclass(frozen=True, slots=True)
class Mode:
    """A permissions mode such as `755` or `6763`, digit by digit."""

    mode: str

    def _digit(self, index: int) -> int:
        return int(self.mode[-index]) if len(self.mode) >= index else 0

    @property
    def owner(self) -> str:
        return str(self._digit(3))

    @property
    def group(self) -> str:
        return str(self._digit(2))

    @property
    def world(self) -> str:
        return str(self._digit(1))

    @property
    def setuid(self) -> bool:
        return bool(self._digit(4) & 4)

    @property
    def setgid(self) -> bool:
        return bool(self._digit(4) & 2)

    @property
    def sticky(self) -> bool:
        return bool(self._digit(4) & 1)

    @property
    def octal(self) -> int:
        return int(self.mode, 8)


@dataclass(frozen=True, slots=True)
class Ace:
    """One POSIX ACL entry: `type` is user, group, mask or other; `name` "" for the owner."""

    default: bool
    type: str
    name: str
    read: bool
    write: bool
    execute: bool

    @property
    def text(self) -> str:
        """The entry as `setfacl` takes it: `default:user:bob:rwx`, `mask::---`."""
        perm = ("r" if self.read else "-") + ("w" if self.write else "-")
        perm += "x" if self.execute else "-"
        return ("default:" if self.default else "") + f"{self.type}:{self.name}:{perm}"


@dataclass(frozen=True, slots=True)
class SelinuxRange:
    low_sensitivity: int
    high_sensitivity: int
    categories: tuple[int, ...] | None

    @property
    def text(self) -> str:
        """The range as SELinux writes it (`s3-s7:c5,c8.c10,c17`)."""
        out = f"s{self.low_sensitivity}"
        if self.high_sensitivity != self.low_sensitivity:
            out += f"-s{self.high_sensitivity}"
        if self.categories:
            runs: list[str] = []
            cats = sorted(self.categories)
            start = prev = cats[0]
            for c in [*cats[1:], -2]:
                if c != prev + 1:
                    runs.append(f"c{start}" if start == prev else f"c{start}.c{prev}")
                    start = c
                prev = c
            out += ":" + ",".join(runs)
        return out


@dataclass(frozen=True, slots=True)
class SelinuxContext:
    user: str | None
    type: str
    range: SelinuxRange | None


@dataclass(frozen=True, slots=True)
class Permission:
    """A `permissions` entry: what to apply to the files under `object` that match."""

    object: str
    pattern: str = "**"
    except_: tuple[str, ...] = ()
    type: tuple[str, ...] = ("file", "directory")
    owner: str | None = None
    group: str | None = None
    mode: Mode | None = None
    acls: tuple[Ace, ...] | None = None
    context: SelinuxContext | None = None

    def validate_file_permission(self) -> None:
        """Raise when this entry cannot apply to a single file (as CodeDeploy does)."""
        if "file" in self.type:
            if self.pattern != "**":
                raise AppSpecError(
                    f"{_FAILED} the application specification file includes an object "
                    f"({self.object}) with an invalid pattern ({self.pattern}), such as a "
                    "pattern for a file applied to a directory. Correct the permissions "
                    "section of the AppSpec file, and then try again."
                )
            if self.except_:
                raise AppSpecError(
                    f"{_FAILED} the except parameter for a pattern in the permissions section "
                    f"({json.dumps(list(self.except_))}) for the object named {self.object} "
                    "contains an invalid format. Update the AppSpec file, and then try again."
                )

    def validate_file_acl(self, path: str) -> None:
        if self.acls and any(a.default for a in self.acls):
            raise AppSpecError(
                f"{_FAILED} the -d parameter has been specified to apply an acl setting to a "
                "file. This parameter is supported for directories only. Update the AppSpec "
                "file, and then try again."
            )


@dataclass(frozen=True, slots=True)
class AppSpec:
    """A parsed AppSpec. `hooks` maps each event to its scripts, in order."""

    version: str
    os: str
    platform: str = "server"
    hooks: dict[str, tuple[HookScript, ...]] = field(default_factory=dict)
    files: tuple[FileMapping, ...] = ()
    permissions: tuple[Permission, ...] = ()
    file_exists_behavior: str = "DISALLOW"
    sudo: dict[str, tuple[bool, ...]] = field(default_factory=dict)


def read_document(text: str, file: str = "appspec.yml") -> Mapping:
    """The AppSpec's YAML as a mapping of sections, without validating them."""
    root, diagnostics = parse_yaml(text, file)
    errors = [d for d in diagnostics if d.severity == "error"]
    if errors:
        raise AppSpecError(f"the AppSpec file is not valid YAML: {errors[0].format()}")
    if not isinstance(root, Mapping):
        raise AppSpecError("the AppSpec file must be a mapping of sections (version, os, ...)")
    return root


def parse_appspec(text: str, file: str = "appspec.yml") -> AppSpec:
    """Read an AppSpec file; raise `AppSpecError` (CodeDeploy's message) when invalid."""
    if not text.strip():
        raise AppSpecError(
            f"{_FAILED} the application specification file was empty. Make sure your AppSpec "
            "file defines at minimum the 'version' and 'os' properties."
        )
    root = read_document(text, file)
    version = _version_text(root.get("version"))
    if version != "0.0":
        raise AppSpecError(
            f"{_FAILED} an invalid version value ({version}) was entered in the application "
            'specification file. Make sure your AppSpec file specifies "0.0" as the version, '
            "and then try again."
        )
    if "Resources" in root or "resources" in root:
        return _serverless(root)
    os_name = _text(root.get("os"))
    if os_name not in ("linux", "windows"):
        raise AppSpecError(
            f"{_FAILED} the application specification file specifies an unsupported operating "
            f'system ({os_name}). Specify either "linux" or "windows" in the os section of the '
            "AppSpec file, and then try again."
        )
    hooks, sudo = _hooks(root.get("hooks"))
    return AppSpec(
        version=version,
        os=os_name,
        hooks=hooks,
        sudo=sudo,
        files=_files(root.get("files")),
        permissions=tuple(_permission(n) for n in _items(root.get("permissions"))),
        file_exists_behavior=_file_exists(root.get("file_exists_behavior")),
    )


def _serverless(root: Mapping) -> AppSpec:
    resources = root.get("Resources") or root.get("resources")
    platform = "ecs" if "AWS::ECS::Service" in json.dumps(to_python(resources)) else "lambda"
    hooks: dict[str, tuple[HookScript, ...]] = {}
    for item in _items(root.get("Hooks") or root.get("hooks")):
        if isinstance(item, Mapping):
            for key, value in item.pairs:
                hooks[key.text] = (HookScript(location=_text(value)),)
    return AppSpec(version="0.0", os="", platform=platform, hooks=hooks)


def _version_text(node: Node | None) -> str:
    if not isinstance(node, Scalar) or node.value is None:
        return ""
    if isinstance(node.value, float):
        return repr(node.value)
    return node.text


def _text(node: Node | None) -> str:
    if isinstance(node, Scalar):
        return node.text
    return "" if node is None else json.dumps(to_python(node))


def _items(node: Node | None) -> list[Node]:
    if node is None or (isinstance(node, Scalar) and node.value is None):
        return []
    if isinstance(node, Sequence):
        return list(node.items)
    raise AppSpecError(f"{_FAILED} a section of the AppSpec file must be a list: {_text(node)}")


def _hooks(
    node: Node | None,
) -> tuple[dict[str, tuple[HookScript, ...]], dict[str, tuple[bool, ...]]]:
    hooks: dict[str, tuple[HookScript, ...]] = {}
    sudo: dict[str, tuple[bool, ...]] = {}
    if node is None or (isinstance(node, Scalar) and node.value is None):
        return hooks, sudo
    if not isinstance(node, Mapping):
        raise AppSpecError(f"{_FAILED} the hooks section of the AppSpec file is not a mapping.")
    for key, value in node.pairs:
        scripts = _items(value)
        if not scripts:
            continue  # an empty hook is ignored, as the agent does
        out: list[HookScript] = []
        flags: list[bool] = []
        for script in scripts:
            if not isinstance(script, Mapping) or _text(script.get("location")) == "":
                raise AppSpecError(
                    f"{_FAILED} the application specification file specifies a script with no "
                    "location value. Specify the location in the hooks section of the AppSpec "
                    "file, and then try again."
                )
            timeout = 3600.0
            t_node = script.get("timeout")
            if t_node is not None:
                t_text = _text(t_node).strip()
                if not re.fullmatch(r"\d+", t_text):
                    raise AppSpecError(
                        f"{_FAILED} an invalid timeout value was provided for a script in the "
                        "application specification file. Make corrections in the hooks section "
                        "of the AppSpec file, and then try again."
                    )
                timeout = float(int(t_text))
            runas = script.get("runas")
            out.append(
                HookScript(
                    location=_text(script.get("location")),
                    timeout=timeout,
                    runas=_text(runas) if runas is not None else None,
                )
            )
            s_node = script.get("sudo")
            flags.append(isinstance(s_node, Scalar) and s_node.value is True)
        hooks[key.text] = tuple(out)
        sudo[key.text] = tuple(flags)
    return hooks, sudo


def _files(node: Node | None) -> tuple[FileMapping, ...]:
    out: list[FileMapping] = []
    for item in _items(node):
        m = item if isinstance(item, Mapping) else Mapping(item.line, item.col)
        source = _text(m.get("source"))
        destination = _text(m.get("destination"))
        if source and not destination:
            raise AppSpecError(
                f"{_FAILED} the application specification file specifies only a source file "
                f"({source}). Add the name of the destination file to the files section of the "
                "AppSpec file, and then try again."
            )
        if not source:
            raise AppSpecError(
                f"{_FAILED} the application specification file specifies a destination file, "
                "but no source file. Update the files section of the AppSpec file, and then "
                "try again."
            )
        out.append(FileMapping(source, destination))
    return tuple(out)


def _file_exists(node: Node | None) -> str:
    if node is None:
        return "DISALLOW"
    value = _text(node)
    if value.upper() not in FILE_EXISTS:
        raise AppSpecError(
            f"{_FAILED} an invalid file_exists_behavior value ({value}) was entered in the "
            "application specification file. Make sure your AppSpec file specifies one of "
            f"{','.join(FILE_EXISTS)} as the file_exists_behavior, and then try again."
        )
    return value.upper()


def _permission(node: Node) -> Permission:
    m = node if isinstance(node, Mapping) else Mapping(node.line, node.col)
    obj = _text(m.get("object"))
    if not obj:
        raise AppSpecError(
            f"{_FAILED} a permission listed in the application specification file has no "
            "object value. Update the permissions section of the AppSpec file, and then try "
            "again."
        )
    pattern = _text(m.get("pattern")) or "**"
    except_ = tuple(_text(i) for i in _items(m.get("except")))
    types = tuple(_text(i) for i in _items(m.get("type"))) or ("file", "directory")
    acls_node = m.get("acls")
    acls = tuple(parse_ace(_text(i)) for i in _items(acls_node)) if acls_node is not None else None
    owner, group = m.get("owner"), m.get("group")
    context = m.get("context")
    return Permission(
        object=obj,
        pattern=pattern,
        except_=except_,
        type=types,
        owner=_text(owner) if owner is not None else None,
        group=_text(group) if group is not None else None,
        mode=_mode(m.get("mode")),
        acls=acls,
        context=_context(context) if context is not None else None,
    )


def _mode(node: Node | None) -> Mode | None:
    if node is None:
        return None
    text = str(node.value) if isinstance(node, Scalar) and isinstance(node.value, int) else ""
    text = text or _text(node)
    if len(text) > 4:
        raise AppSpecError(
            f"{_FAILED} the length of a permissions mode ({text}) in the application "
            "specification file is invalid. Permissions modes must be between one and four "
            "characters long. Update the permissions section of the AppSpec file, and then try "
            "again."
        )
    for ch in text:
        if ch not in "01234567":
            raise AppSpecError(
                f"{_FAILED} the permissions mode ({text}) in the application specification file "
                f"contains an invalid character ({ch}). Update the permissions section of the "
                "AppSpec file, and then try again."
            )
    return Mode(text.rjust(3, "0"))


_ACE_TYPES = {"u": "user", "user": "user", "g": "group", "group": "group"}
_ACE_TYPES |= {"m": "mask", "mask": "mask", "o": "other", "other": "other"}


def parse_ace(text: str, internal: bool = False) -> Ace:
    """One ACL entry (`d:u:bob:rwx`, `g:dev:6`, `m:7`, ...). Base entries (the owner, owning
    group, other) are set with `mode`, so only `internal` callers may give them."""
    invalid = AppSpecError(
        f"{_FAILED} of a problem with the acls permission settings in the application "
        f"specification file. Invalid acl entry ({text})."
    )
    parts = text.split(":")
    default = False
    if len(parts) >= 3 and parts[0] in ("d", "default"):
        default = True
        parts = parts[1:]
    if len(parts) == 2:
        kind = _ACE_TYPES.get(parts[0]) if parts[0] in ("m", "mask", "o", "other") else "user"
        name = "" if kind in ("mask", "other") else parts[0]
    elif len(parts) == 3:
        found = _ACE_TYPES.get(parts[0])
        if found is None or (found in ("mask", "other") and parts[1]):
            raise invalid
        kind, name = found, parts[1]
    else:
        raise invalid
    assert kind is not None
    perm = parts[-1]
    if perm.isdigit() and len(perm) == 1 and perm in "01234567":
        bits = int(perm)
        read, write, execute = bool(bits & 4), bool(bits & 2), bool(bits & 1)
    else:
        for ch in perm:
            if ch not in "rwx-":
                raise AppSpecError(
                    f"{_FAILED} the access control list (ACL) named {text} in the application "
                    f"specification file contains an invalid character ({ch}). Correct the ACL "
                    "in the hooks section of the AppSpec file, and then try again."
                )
        read, write, execute = "r" in perm, "w" in perm, "x" in perm
    if not internal and not default and (kind == "other" or (kind != "mask" and not name)):
        raise AppSpecError(
            f"{_FAILED} of a problem with the acls permission settings in the application "
            f"specification file. Use mode to set the base acl entry ({text}). Update the "
            "permissions section of the AppSpec file, and then try again."
        )
    return Ace(default, kind, name, read, write, execute)


def _context(node: Node) -> SelinuxContext:
    m = node if isinstance(node, Mapping) else Mapping(node.line, node.col)
    type_node = m.get("type")
    if type_node is None or _text(type_node) == "":
        shown = ", ".join(f'"{k.text}"=>"{_text(v)}"' for k, v in m.pairs)
        raise AppSpecError(
            f"{_FAILED} the application specification file specifies an invalid context type "
            f"({{{shown}}}). Update the permissions section of the AppSpec file, and then try "
            "again."
        )
    range_node = m.get("range")
    user = m.get("name") or m.get("user")
    return SelinuxContext(
        user=_text(user) if user is not None else None,
        type=_text(type_node),
        range=parse_selinux_range(_text(range_node)) if range_node is not None else None,
    )


def parse_selinux_range(text: str) -> SelinuxRange:
    """An SELinux MLS range `sL[-sH][:cA[.cB],...]`; raise `AppSpecError` when invalid."""
    if text.startswith(":") or text.endswith(":") or text.count(":") > 1:
        raise AppSpecError(f"invalid range part {text}")
    sens, _, cats = text.partition(":")
    if "-" in sens:
        lo_text, _, hi_text = sens.partition("-")
        if not lo_text or not hi_text:
            raise AppSpecError(f"invalid range part {sens}")
    else:
        lo_text = hi_text = sens
    low, high = _number(lo_text, "s", "sensitivity", 0), _number(hi_text, "s", "sensitivity", 0)
    if high < low:
        raise AppSpecError(
            f"{_FAILED} of a problem with the SELinux range specified ({text}) for the context "
            "parameter in the permissions section of the application specification file. Make "
            "corrections in the permissions section of the AppSpec file, and then try again."
        )
    if not cats:
        return SelinuxRange(low, high, None)
    categories: list[int] = []
    for item in cats.split(","):
        if "." in item:
            a, _, b = item.partition(".")
            if not a or not b:
                raise AppSpecError(f"invalid range part {item}")
            first, last = _number(a, "c", "category", 1023), _number(b, "c", "category", 1023)
            if last < first:
                raise AppSpecError(f"invalid category range {item}")
            categories.extend(range(first, last + 1))
        else:
            categories.append(_number(item, "c", "category", 1023))
    if len(set(categories)) != len(categories):
        raise AppSpecError("duplicate categories")
    return SelinuxRange(low, high, tuple(categories))


def _number(text: str, prefix: str, what: str, maximum: int) -> int:
    m = re.fullmatch(prefix + r"(\d+)", text)
    if m is None or (maximum and int(m.group(1)) > maximum):
        raise AppSpecError(f"invalid {what} {text}")
    return int(m.group(1))
