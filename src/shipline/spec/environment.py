"""Environment files (`.shipline/environments/<name>.yml`) -> `EnvironmentSpec`.

`load_environment` never raises for bad input: it returns the spec (None when the file
cannot be used) and every diagnostic, each with `file:line:col`, the key path, what was
expected and the closest valid key. The format is documented in docs/deployments.md:

    target:   {local: {instances, start, env, ports: 9100-9199, grace}}
              | {ssh: {hosts: [HOST | {host, port, host_key | fingerprint, service_port}],
                       user, key_secret, path, restart, service_port, known_hosts, env,
                       connect_timeout, restart_timeout, keep_releases}}
    strategy: all-at-once | {rolling: {batch_size | batch_percent, min_healthy}}
              | {blue-green: {keep_old}} | {canary: {weights, bake, analysis}}
    health:   {http: {path, status} | command: CMD, timeout, interval,
               healthy_threshold, unhealthy_threshold, start_timeout}
    hooks:    {appspec: PATH} | {BeforeInstall: [{location, timeout, runas}], ...}
    traffic:  {port, host, drain}
    rollback: {automatic, on: [hooks, health, analysis]}
    protection: {reviewers: {users, roles, required}, prevent_self_review, branches, tags,
                 wait_timer, freeze: [{cron, duration}], allow_untrusted}
    concurrency: {skip_superseded}

Durations are seconds as numbers, or strings such as `90s`, `5m`, `1h30m`, `2d`.
"""

from __future__ import annotations

import difflib
import itertools
import re

from shipline.spec.cron import CronError, parse_cron
from shipline.spec.diagnostics import Diagnostic, has_errors
from shipline.spec.environment_models import (
    HOOK_EVENTS,
    ROLLBACK_CAUSES,
    STRATEGIES,
    CanaryAnalysis,
    CommandCheck,
    ConcurrencySpec,
    EnvironmentSpec,
    FreezeWindow,
    HealthCheckSpec,
    HookScript,
    HooksSpec,
    HttpCheck,
    LocalTarget,
    PortRange,
    ProtectionRules,
    Reviewers,
    RollbackPolicy,
    SshHost,
    SshTarget,
    StrategySpec,
    Target,
    TrafficSpec,
)
from shipline.spec.filters import validate_pattern
from shipline.spec.models import Pos
from shipline.spec.reader import Reader
from shipline.spec.yamlpos import Mapping, Node, Scalar, Sequence, describe, parse_yaml

__all__ = [
    "ENVIRONMENT_DIR",
    "REVIEWER_ROLES",
    "environment_name",
    "load_environment",
    "parse_duration",
]

ENVIRONMENT_DIR = ".shipline/environments"

TOP_KEYS = (
    "description",
    "url",
    "target",
    "strategy",
    "health",
    "hooks",
    "traffic",
    "rollback",
    "protection",
    "concurrency",
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# Who may be named as a reviewer role (the project roles that may approve).
REVIEWER_ROLES = ("developer", "maintainer", "admin")
MAX_PROTECTION_DURATION = 30 * 86400
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_USER = re.compile(r"[a-z_][a-z0-9_.-]{0,31}\Z", re.IGNORECASE)
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252}[A-Za-z0-9])?\Z|\[?[0-9A-Fa-f:.]+\]?\Z")
_HOST_KEY = re.compile(r"(ssh|ecdsa|sk-)[A-Za-z0-9@._-]+ [A-Za-z0-9+/]+={0,3}( .*)?\Z")
_FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]{43}=?\Z")
_SSH_PATH = re.compile(r"/[A-Za-z0-9/._-]*\Z")


def environment_name(file: str) -> str:
    """The environment's name: the file's name without `.yml`/`.yaml`."""
    base = file.replace("\\", "/").rsplit("/", 1)[-1]
    for suffix in (".yml", ".yaml"):
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return base


def parse_duration(value: object) -> float | None:
    """Seconds from a number or a string like `90s`, `5m`, `1h30m`; None when invalid."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value >= 0 else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        return number if number >= 0 else None
    total, pos = 0.0, 0
    for m in re.finditer(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", text):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return total if pos == len(text) else None


def load_environment(
    text: str, file: str, *, name: str | None = None, lenient: bool = False
) -> tuple[EnvironmentSpec | None, list[Diagnostic]]:
    """Read an environment file's text. Returns (None, diagnostics) when it cannot be used.

    `lenient` (for lint): return whatever spec could be built even when there are errors.
    """
    root, diagnostics = parse_yaml(text, file)
    reader = Reader(file)
    reader.diagnostics.extend(diagnostics)
    if root is None:
        if not diagnostics:
            reader.error(
                Scalar(1, 1, None),
                'the environment file is empty: it needs at least a "target"',
                code="environment",
            )
        return None, reader.diagnostics
    env_name = name if name is not None else environment_name(file)
    if not _NAME.match(env_name):
        reader.error(
            root,
            f'environment name "{env_name}" (from the file name) must be 1-63 letters, digits, '
            '".", "_" or "-", starting with a letter or digit',
            code="environment",
        )
    spec = _Loader(reader).environment(root, env_name)
    if spec is None or (has_errors(reader.diagnostics) and not lenient):
        return None, reader.diagnostics
    return spec, reader.diagnostics


class _Loader:
    def __init__(self, reader: Reader) -> None:
        self.r = reader

    # -- helpers ------------------------------------------------------------------------

    def err(self, node: Node, message: str, path: str, hint: str = "") -> None:
        self.r.error(node, message, code="environment", path=path, hint=hint)

    def section(
        self, node: Node | None, path: str, keys: tuple[str, ...], required: tuple[str, ...] = ()
    ) -> Mapping | None:
        mapping = self.r.mapping(node, path, path)
        if mapping is not None:
            self.r.check_keys(mapping, keys, path, path, required=required)
        return mapping

    def integer(
        self, node: Node | None, path: str, default: int, lo: int = 0, hi: int | None = None
    ) -> int:
        if node is None:
            return default
        v = node.value if isinstance(node, Scalar) else None
        if not isinstance(v, int) or isinstance(v, bool) or v < lo or (hi is not None and v > hi):
            bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
            self.err(node, f'"{path}" must be an integer {bound}, but it is {_show(node)}', path)
            return default
        return v

    def number(self, node: Node | None, path: str, default: float | None) -> float | None:
        if node is None:
            return default
        v = node.value if isinstance(node, Scalar) else None
        if not isinstance(v, int | float) or isinstance(v, bool) or v < 0:
            self.err(node, f'"{path}" must be a number >= 0, but it is {_show(node)}', path)
            return default
        return float(v)

    def duration(self, node: Node | None, path: str, default: float) -> float:
        if node is None:
            return default
        value = parse_duration(node.value) if isinstance(node, Scalar) else None
        if value is None:
            self.err(
                node,
                f'"{path}" must be a duration (seconds, or like "30s", "5m", "1h30m"), '
                f"but it is {_show(node)}",
                path,
            )
            return default
        return value

    def boolean(self, node: Node | None, path: str, default: bool) -> bool:
        if node is None:
            return default
        if isinstance(node, Scalar) and isinstance(node.value, bool):
            return node.value
        self.err(node, f'"{path}" must be true or false, but it is {_show(node)}', path)
        return default

    def text(self, node: Node | None, path: str) -> str | None:
        return self.r.string(node, path)

    # -- the document -------------------------------------------------------------------

    def environment(self, root: Node, name: str) -> EnvironmentSpec | None:
        node = self.r.mapping(root, "", "environment")
        if node is None:
            return None
        self.r.check_keys(node, TOP_KEYS, "", "environment", required=("target",))
        target = self.target(node.get("target"))
        if target is None:
            # Still read the other sections: lint reports all mistakes at once.
            self.strategy(node.get("strategy"))
            self.health(node.get("health"))
            self.hooks(node.get("hooks"))
            self.traffic(node.get("traffic"))
            self.rollback(node.get("rollback"))
            self.protection(node.get("protection"))
            self.concurrency(node.get("concurrency"))
            return None
        strategy = self.strategy(node.get("strategy"))
        if isinstance(target, LocalTarget):
            self.check_fits(node, target, strategy)
        else:
            self.check_ssh_strategy(node, target, strategy)
        traffic = self.traffic(node.get("traffic"))
        if isinstance(target, SshTarget) and traffic is not None:
            self.r.warning(
                node.get("traffic") or node,
                '"traffic" has no effect on an "ssh" target: the hosts serve on their own '
                "(put them behind your load balancer)",
                code="environment",
                path="traffic",
            )
        if isinstance(target, LocalTarget) and traffic is None and "target" in node:
            self.err(
                node.get("target") or node,
                'a "local" target needs "traffic: {port: N}": the router clients connect to',
                "traffic",
            )
        return EnvironmentSpec(
            name=name,
            file=self.r.file,
            target=target,
            strategy=strategy,
            health=self.health(node.get("health")),
            hooks=self.hooks(node.get("hooks")),
            traffic=traffic,
            rollback=self.rollback(node.get("rollback")),
            protection=self.protection(node.get("protection")),
            concurrency=self.concurrency(node.get("concurrency")),
            url=self.text(node.get("url"), "url"),
            description=self.text(node.get("description"), "description"),
        )

    def check_fits(self, node: Mapping, target: LocalTarget, strategy: StrategySpec) -> None:
        # Blue-green runs two full sets side by side; the others one extra batch at most.
        needed = target.instances * 2
        if target.ports.size < needed:
            self.err(
                node.get("target") or node,
                f"the port range {target.ports.first}-{target.ports.last} has "
                f"{target.ports.size} port(s); {target.instances} instances need {needed} "
                "(old and new side by side during a deployment)",
                "target.local.ports",
            )
        if strategy.min_healthy is not None and strategy.min_healthy > target.instances:
            self.err(
                node.get("strategy") or node,
                f'"min_healthy" ({strategy.min_healthy}) is more than the {target.instances} '
                "instance(s) of the target",
                "strategy.rolling.min_healthy",
            )

    def check_ssh_strategy(self, node: Mapping, target: SshTarget, strategy: StrategySpec) -> None:
        if strategy.kind in ("blue-green", "canary"):
            self.err(
                node.get("strategy") or node,
                f'the "{strategy.kind}" strategy shifts traffic between two sets of instances '
                'through the router, which an "ssh" target does not have: each host runs one '
                'release behind its own "current" link. Use "all-at-once" or "rolling" (hosts '
                "in batches)",
                "strategy",
            )
        if strategy.min_healthy is not None and strategy.min_healthy > len(target.hosts):
            self.err(
                node.get("strategy") or node,
                f'"min_healthy" ({strategy.min_healthy}) is more than the {len(target.hosts)} '
                "host(s) of the target",
                "strategy.rolling.min_healthy",
            )

    # -- target -------------------------------------------------------------------------

    def target(self, node: Node | None) -> Target | None:
        mapping = self.section(node, "target", ("local", "ssh"))
        if mapping is None:
            return None
        if len(mapping.pairs) != 1:
            self.err(mapping, '"target" must have exactly one of "local" or "ssh"', "target")
            return None
        kind, value = mapping.pairs[0]
        if kind.text == "local":
            return self.local(value)
        if kind.text == "ssh":
            return self.ssh(value)
        return None

    def local(self, node: Node) -> LocalTarget | None:
        p = "target.local"
        m = self.section(node, p, ("instances", "start", "env", "ports", "grace"), ("start",))
        if m is None:
            return None
        start = self.text(m.get("start"), f"{p}.start")
        ports = self.ports(m.get("ports"), f"{p}.ports")
        env = self.r.string_map(m.get("env"), f"{p}.env", f"{p}.env")
        for key, _ in env:
            if not _ENV_NAME.match(key):
                self.err(m.get("env") or m, f'"{key}" is not a valid variable name', f"{p}.env")
        if start is None:
            return None
        return LocalTarget(
            instances=self.integer(m.get("instances"), f"{p}.instances", 1, 1, 256),
            start=start,
            env=env,
            ports=ports,
            grace=self.duration(m.get("grace"), f"{p}.grace", 10.0),
            pos=Pos(m.line, m.col),
        )

    def ports(self, node: Node | None, path: str) -> PortRange:
        default = PortRange(20000, 20999)
        if node is None:
            return default
        text = node.text if isinstance(node, Scalar) else ""
        m = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", text)
        if m:
            first, last = int(m.group(1)), int(m.group(2))
            if 1024 <= first <= last <= 65535:
                return PortRange(first, last)
        self.err(
            node,
            f'"{path}" must be a range "FIRST-LAST" of ports between 1024 and 65535, '
            f"but it is {_show(node)}",
            path,
        )
        return default

    def ssh(self, node: Node) -> SshTarget | None:
        p = "target.ssh"
        keys = (
            "hosts",
            "user",
            "key_secret",
            "path",
            "restart",
            "service_port",
            "known_hosts",
            "env",
            "connect_timeout",
            "restart_timeout",
            "keep_releases",
        )
        required = ("hosts", "user", "key_secret", "path", "restart", "service_port")
        m = self.section(node, p, keys, required)
        if m is None:
            return None
        user = self.text(m.get("user"), f"{p}.user")
        key = self.text(m.get("key_secret"), f"{p}.key_secret")
        path = self.text(m.get("path"), f"{p}.path")
        restart = self.text(m.get("restart"), f"{p}.restart")
        known_hosts = self.text(m.get("known_hosts"), f"{p}.known_hosts")
        if user is not None and not _USER.match(user):
            self.err(m.get("user") or m, f'"{p}.user" is not a valid user name', f"{p}.user")
        if key is not None and not _ENV_NAME.match(key):
            self.err(
                m.get("key_secret") or m,
                f'"{p}.key_secret" names an environment secret (letters, digits, "_"), '
                f"not the key itself",
                f"{p}.key_secret",
            )
        if path is not None and not _SSH_PATH.match(path):
            self.err(
                m.get("path") or m,
                f'"{p}.path" must be an absolute path of letters, digits, "/", ".", "_", "-"',
                f"{p}.path",
            )
        env = self.r.string_map(m.get("env"), f"{p}.env", f"{p}.env")
        for name, _ in env:
            if not _ENV_NAME.match(name):
                self.err(m.get("env") or m, f'"{name}" is not a valid variable name', f"{p}.env")
        hosts = self.ssh_hosts(m.get("hosts"), f"{p}.hosts", known_hosts is not None)
        service_port = self.integer(m.get("service_port"), f"{p}.service_port", 0, 1, 65535)
        if not (hosts and user and key and path and restart and service_port):
            return None
        return SshTarget(
            hosts=hosts,
            user=user,
            key_secret=key,
            path=path.rstrip("/") or "/",
            restart=restart,
            service_port=service_port,
            known_hosts=known_hosts,
            env=env,
            connect_timeout=self.duration(m.get("connect_timeout"), f"{p}.connect_timeout", 10.0),
            restart_timeout=self.duration(m.get("restart_timeout"), f"{p}.restart_timeout", 60.0),
            keep_releases=self.integer(m.get("keep_releases"), f"{p}.keep_releases", 5, 1, 100),
            pos=Pos(m.line, m.col),
        )

    def ssh_hosts(
        self, node: Node | None, p: str, have_known_hosts: bool
    ) -> tuple[SshHost, ...] | None:
        if node is None:
            return None
        if not isinstance(node, Sequence) or not node.items:
            self.err(node, f'"{p}" must be a list of hosts, at least one', p)
            return None
        hosts: list[SshHost] = []
        for i, item in enumerate(node.items):
            host = self.ssh_host(item, f"{p}[{i}]")
            if host is None:
                continue
            if host.host_key is None and host.fingerprint is None and not have_known_hosts:
                self.err(
                    item,
                    f'"{p}[{i}]" ({host.name}) has no host key to verify: give "host_key" '
                    '(an OpenSSH public key line) or "fingerprint" (SHA256:...), or the '
                    'target\'s "known_hosts"; Shipline never accepts an unknown host key',
                    f"{p}[{i}]",
                )
                continue
            hosts.append(host)
        names = [h.name for h in hosts]
        for name in sorted({n for n in names if names.count(n) > 1}):
            self.err(node, f'"{p}" names {name} twice', p)
        return tuple(hosts) if len(hosts) == len(node.items) else None

    def ssh_host(self, node: Node, p: str) -> SshHost | None:
        if isinstance(node, Scalar):
            text = self.text(node, p) or ""
            host, _, port = text.partition(":") if text.count(":") == 1 else (text, "", "")
            if not _HOST.match(host) or (port and not port.isdigit()):
                self.err(node, f'"{p}" must be a host name or "HOST:PORT", not {text!r}', p)
                return None
            number = int(port) if port else 22
            if not 1 <= number <= 65535:
                self.err(node, f'"{p}": port {number} is not between 1 and 65535', p)
                return None
            return SshHost(host, number, pos=Pos(node.line, node.col))
        keys = ("host", "port", "host_key", "fingerprint", "service_port", "path")
        m = self.section(node, p, keys, ("host",))
        if m is None:
            return None
        name = self.text(m.get("host"), f"{p}.host")
        if name is None:
            return None
        if not _HOST.match(name):
            self.err(m.get("host") or m, f'"{p}.host" is not a host name or address', p)
            return None
        host_key = self.text(m.get("host_key"), f"{p}.host_key")
        fingerprint = self.text(m.get("fingerprint"), f"{p}.fingerprint")
        if host_key is not None and not _HOST_KEY.match(host_key.strip()):
            self.err(
                m.get("host_key") or m,
                f'"{p}.host_key" must be an OpenSSH public key line like '
                '"ssh-ed25519 AAAAC3Nza..." (the host\'s /etc/ssh/ssh_host_*_key.pub)',
                f"{p}.host_key",
            )
            return None
        if fingerprint is not None and not _FINGERPRINT.match(fingerprint.strip()):
            self.err(
                m.get("fingerprint") or m,
                f'"{p}.fingerprint" must be a SHA-256 fingerprint like "SHA256:47DEQpj8HBSa+/..." '
                "(ssh-keygen -lf KEY.pub)",
                f"{p}.fingerprint",
            )
            return None
        if host_key is not None and fingerprint is not None:
            self.err(m, f'give "host_key" or "fingerprint" for {p}, not both', p)
        service_port = m.get("service_port")
        path = self.text(m.get("path"), f"{p}.path")
        if path is not None and not _SSH_PATH.match(path):
            self.err(
                m.get("path") or m,
                f'"{p}.path" must be an absolute path of letters, digits, "/", ".", "_", "-"',
                f"{p}.path",
            )
            path = None
        return SshHost(
            host=name,
            port=self.integer(m.get("port"), f"{p}.port", 22, 1, 65535),
            host_key=host_key.strip() if host_key else None,
            fingerprint=fingerprint.strip() if fingerprint else None,
            service_port=(
                self.integer(service_port, f"{p}.service_port", 0, 1, 65535) or None
                if service_port is not None
                else None
            ),
            path=path.rstrip("/") or "/" if path else None,
            pos=Pos(m.line, m.col),
        )

    # -- strategy -----------------------------------------------------------------------

    def strategy(self, node: Node | None) -> StrategySpec:
        if node is None:
            return StrategySpec()
        if isinstance(node, Scalar):
            if node.text in STRATEGIES:
                return StrategySpec(kind=node.text, pos=Pos(node.line, node.col))
            self.unknown_strategy(node, node.text)
            return StrategySpec()
        m = self.section(node, "strategy", STRATEGIES)
        if m is None:
            return StrategySpec()
        if len(m.pairs) != 1:
            self.err(m, '"strategy" must name exactly one strategy', "strategy")
            return StrategySpec()
        key, value = m.pairs[0]
        pos = Pos(key.line, key.col)
        p = f"strategy.{key.text}"
        if key.text == "all-at-once":
            self.section(value, p, ())
            return StrategySpec(pos=pos)
        if key.text == "rolling":
            return self.rolling(value, p, pos)
        if key.text == "blue-green":
            bg = self.section(value, p, ("keep_old",))
            keep = self.duration(bg.get("keep_old") if bg else None, f"{p}.keep_old", 60.0)
            return StrategySpec(kind="blue-green", keep_old=keep, pos=pos)
        if key.text == "canary":
            return self.canary(value, p, pos)
        return StrategySpec()

    def unknown_strategy(self, node: Node, text: str) -> None:
        expected = ", ".join(f'"{s}"' for s in STRATEGIES)
        close = difflib.get_close_matches(text, STRATEGIES, n=1, cutoff=0.6)
        self.err(
            node,
            f'unknown strategy "{text}": expected one of {expected}',
            "strategy",
            hint=f'did you mean "{close[0]}"?' if close else "",
        )

    def rolling(self, node: Node, p: str, pos: Pos) -> StrategySpec:
        m = self.section(node, p, ("batch_size", "batch_percent", "min_healthy"))
        if m is None:
            return StrategySpec(kind="rolling", batch_size=1, pos=pos)
        size = m.get("batch_size")
        percent = m.get("batch_percent")
        if size is not None and percent is not None:
            self.err(percent, 'give "batch_size" or "batch_percent", not both', p)
        batch_size = self.integer(size, f"{p}.batch_size", 1, 1) if size is not None else None
        batch_percent = (
            self.integer(percent, f"{p}.batch_percent", 25, 1, 100) if percent is not None else None
        )
        if batch_size is None and batch_percent is None:
            batch_size = 1
        min_healthy = m.get("min_healthy")
        return StrategySpec(
            kind="rolling",
            batch_size=batch_size,
            batch_percent=batch_percent,
            min_healthy=(
                self.integer(min_healthy, f"{p}.min_healthy", 0, 0)
                if min_healthy is not None
                else None
            ),
            pos=pos,
        )

    def canary(self, node: Node, p: str, pos: Pos) -> StrategySpec:
        m = self.section(node, p, ("weights", "bake", "analysis"))
        weights: list[int] = []
        w_node = m.get("weights") if m else None
        if isinstance(w_node, Sequence) and w_node.items:
            for i, item in enumerate(w_node.items):
                weights.append(self.integer(item, f"{p}.weights[{i}]", 100, 1, 100))
            if any(b <= a for a, b in itertools.pairwise(weights)) or (weights[-1] != 100):
                self.err(
                    w_node,
                    f'"{p}.weights" must increase and end at 100, like [10, 50, 100]',
                    f"{p}.weights",
                )
        elif w_node is not None:
            self.err(
                w_node,
                f'"{p}.weights" must be a list of percentages like [10, 50, 100], '
                f"but it is {_show(w_node)}",
                f"{p}.weights",
            )
        return StrategySpec(
            kind="canary",
            weights=tuple(weights) or (10, 50, 100),
            bake=self.duration(m.get("bake") if m else None, f"{p}.bake", 30.0),
            analysis=self.analysis(m.get("analysis") if m else None, f"{p}.analysis"),
            pos=pos,
        )

    def analysis(self, node: Node | None, p: str) -> CanaryAnalysis | None:
        keys = ("max_error_rate", "max_p95_ms", "min_requests", "interval")
        m = self.section(node, p, keys)
        if m is None:
            return None
        rate = self.number(m.get("max_error_rate"), f"{p}.max_error_rate", None)
        if rate is not None and rate > 1:
            self.err(
                m.get("max_error_rate") or m,
                f'"{p}.max_error_rate" is a fraction between 0 and 1 (0.01 is 1 %)',
                f"{p}.max_error_rate",
            )
        return CanaryAnalysis(
            max_error_rate=rate,
            max_p95_ms=self.number(m.get("max_p95_ms"), f"{p}.max_p95_ms", None),
            min_requests=self.integer(m.get("min_requests"), f"{p}.min_requests", 0, 0),
            interval=self.duration(m.get("interval"), f"{p}.interval", 5.0),
        )

    # -- health, hooks, traffic, rollback ----------------------------------------------

    def health(self, node: Node | None) -> HealthCheckSpec:
        keys = (
            "http",
            "command",
            "timeout",
            "interval",
            "healthy_threshold",
            "unhealthy_threshold",
            "start_timeout",
        )
        m = self.section(node, "health", keys)
        if m is None:
            return HealthCheckSpec()
        check: HttpCheck | CommandCheck = HttpCheck()
        if m.get("http") is not None and m.get("command") is not None:
            self.err(m, 'give "http" or "command" as the health check, not both', "health")
        if m.get("command") is not None:
            run = self.text(m.get("command"), "health.command")
            check = CommandCheck(run or "true")
        elif m.get("http") is not None:
            h = self.section(m.get("http"), "health.http", ("path", "status"))
            path = (self.text(h.get("path"), "health.http.path") if h else None) or "/"
            if not path.startswith("/"):
                self.err(h or m, '"health.http.path" must start with "/"', "health.http.path")
            status = self.integer(h.get("status") if h else None, "health.http.status", 200, 100)
            check = HttpCheck(path, status)
        return HealthCheckSpec(
            check=check,
            timeout=self.duration(m.get("timeout"), "health.timeout", 2.0),
            interval=self.duration(m.get("interval"), "health.interval", 1.0),
            healthy_threshold=self.integer(
                m.get("healthy_threshold"), "health.healthy_threshold", 1, 1
            ),
            unhealthy_threshold=self.integer(
                m.get("unhealthy_threshold"), "health.unhealthy_threshold", 3, 1
            ),
            start_timeout=self.duration(m.get("start_timeout"), "health.start_timeout", 30.0),
            pos=Pos(m.line, m.col),
        )

    def hooks(self, node: Node | None) -> HooksSpec:
        m = self.section(node, "hooks", ("appspec", *HOOK_EVENTS))
        if m is None:
            return HooksSpec()
        appspec = self.text(m.get("appspec"), "hooks.appspec")
        inline: list[tuple[str, tuple[HookScript, ...]]] = []
        for key, value in m.pairs:
            if key.text in HOOK_EVENTS:
                inline.append((key.text, self.scripts(value, f"hooks.{key.text}")))
        if appspec is not None and inline:
            self.err(m, 'give "appspec" or inline hooks, not both', "hooks")
        if appspec is not None and (appspec.startswith("/") or ".." in appspec.split("/")):
            self.err(
                m.get("appspec") or m,
                '"hooks.appspec" is a path inside the release (relative, no "..")',
                "hooks.appspec",
            )
        return HooksSpec(appspec=appspec, inline=tuple(inline), pos=Pos(m.line, m.col))

    def scripts(self, node: Node, path: str) -> tuple[HookScript, ...]:
        if not isinstance(node, Sequence):
            self.err(node, f'"{path}" must be a list of scripts {{location, timeout, runas}}', path)
            return ()
        out: list[HookScript] = []
        for i, item in enumerate(node.items):
            p = f"{path}[{i}]"
            s = self.section(item, p, ("location", "timeout", "runas"), ("location",))
            if s is None:
                continue
            location = self.text(s.get("location"), f"{p}.location")
            if location is None:
                continue
            out.append(
                HookScript(
                    location=location,
                    timeout=self.duration(s.get("timeout"), f"{p}.timeout", 3600.0),
                    runas=self.text(s.get("runas"), f"{p}.runas"),
                )
            )
        return tuple(out)

    def traffic(self, node: Node | None) -> TrafficSpec | None:
        m = self.section(node, "traffic", ("port", "host", "drain"), ("port",))
        if m is None or m.get("port") is None:
            return None
        return TrafficSpec(
            port=self.integer(m.get("port"), "traffic.port", 8080, 1, 65535),
            host=self.text(m.get("host"), "traffic.host") or "127.0.0.1",
            drain=self.duration(m.get("drain"), "traffic.drain", 5.0),
            pos=Pos(m.line, m.col),
        )

    def rollback(self, node: Node | None) -> RollbackPolicy:
        m = self.section(node, "rollback", ("automatic", "on"))
        if m is None:
            return RollbackPolicy()
        on = self.r.strings(m.get("on"), "rollback.on")
        for cause in on or ():
            if cause not in ROLLBACK_CAUSES:
                expected = ", ".join(f'"{c}"' for c in ROLLBACK_CAUSES)
                self.err(
                    m.get("on") or m,
                    f'unknown rollback cause "{cause}": expected {expected}',
                    "rollback.on",
                )
        return RollbackPolicy(
            automatic=self.boolean(m.get("automatic"), "rollback.automatic", True),
            on=tuple(on) if on is not None else ROLLBACK_CAUSES,
        )

    # -- protection (enforced by the control plane) -------------------------------------

    def protection(self, node: Node | None) -> ProtectionRules:
        keys = (
            "reviewers",
            "prevent_self_review",
            "branches",
            "tags",
            "wait_timer",
            "freeze",
            "allow_untrusted",
        )
        m = self.section(node, "protection", keys)
        if m is None:
            return ProtectionRules()
        return ProtectionRules(
            reviewers=self.reviewers(m.get("reviewers")),
            prevent_self_review=self.boolean(
                m.get("prevent_self_review"), "protection.prevent_self_review", True
            ),
            branches=self.patterns(m.get("branches"), "protection.branches"),
            tags=self.patterns(m.get("tags"), "protection.tags"),
            wait_timer=self.bounded(m.get("wait_timer"), "protection.wait_timer", 0.0),
            freeze=self.freeze(m.get("freeze")),
            allow_untrusted=self.boolean(
                m.get("allow_untrusted"), "protection.allow_untrusted", False
            ),
            pos=Pos(m.line, m.col),
        )

    def bounded(self, node: Node | None, path: str, default: float) -> float:
        """A duration of at most 30 days (GitHub's wait timer limit; longer is a mistake)."""
        value = self.duration(node, path, default)
        if node is not None and value > MAX_PROTECTION_DURATION:
            self.err(node, f'"{path}" must be at most 30 days, but it is {_show(node)}', path)
            return default
        return value

    def patterns(self, node: Node | None, path: str) -> tuple[str, ...] | None:
        found = self.r.strings(node, path)
        if found is None or node is None:
            return found
        for pattern in found:
            for problem in validate_pattern(pattern, kind="ref"):
                self.err(node, f'"{path}": pattern {pattern!r}: {problem.message}', path)
        return found

    def reviewers(self, node: Node | None) -> Reviewers | None:
        p = "protection.reviewers"
        m = self.section(node, p, ("users", "roles", "required"))
        if m is None:
            return None
        users = self.r.strings(m.get("users"), f"{p}.users") or ()
        roles = self.r.strings(m.get("roles"), f"{p}.roles") or ()
        for role in roles:
            if role not in REVIEWER_ROLES:
                self.err(
                    m.get("roles") or m,
                    f'"{p}.roles": no role {role!r} (roles: {", ".join(REVIEWER_ROLES)})',
                    f"{p}.roles",
                )
        required = self.integer(m.get("required"), f"{p}.required", 1, 1, 10)
        if not users and not roles:
            roles = ("maintainer",)  # reviewers: {} means the project's maintainers
        elif not roles and required > len(users):
            self.err(
                m.get("required") or m,
                f'"{p}.required" is {required} but only {len(users)} user(s) may approve',
                f"{p}.required",
            )
        return Reviewers(users=users, roles=roles, required=required)

    def freeze(self, node: Node | None) -> tuple[FreezeWindow, ...]:
        if node is None:
            return ()
        if not isinstance(node, Sequence):
            self.err(node, '"protection.freeze" must be a list of {cron, duration}', "freeze")
            return ()
        out: list[FreezeWindow] = []
        for i, item in enumerate(node.items):
            p = f"protection.freeze[{i}]"
            m = self.section(item, p, ("cron", "duration"), ("cron", "duration"))
            if m is None:
                continue
            cron = self.text(m.get("cron"), f"{p}.cron")
            if cron is not None:
                parsed = parse_cron(cron)
                if isinstance(parsed, CronError):
                    self.err(m.get("cron") or m, f"invalid cron in {p}: {parsed.message}", p)
                    continue
                duration = self.bounded(m.get("duration"), f"{p}.duration", 0.0)
                if duration > 0:
                    out.append(FreezeWindow(cron, duration, Pos(m.line, m.col)))
                elif m.get("duration") is not None:
                    self.err(m.get("duration") or m, f'"{p}.duration" must be > 0', p)
        return tuple(out)

    def concurrency(self, node: Node | None) -> ConcurrencySpec:
        m = self.section(node, "concurrency", ("skip_superseded",))
        if m is None:
            return ConcurrencySpec()
        return ConcurrencySpec(
            skip_superseded=self.boolean(
                m.get("skip_superseded"), "concurrency.skip_superseded", True
            )
        )


def _show(node: Node) -> str:
    if isinstance(node, Scalar) and node.value is not None:
        return f"{describe(node)} {node.text!r}"
    return describe(node)
