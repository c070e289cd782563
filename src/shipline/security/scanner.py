"""A scanner of finished jobs' logs for credentials Shipline does not know.

Masking hides the values Shipline holds; a step can still print a credential it made or
found (a cloud key in a config file, a token a tool printed). After a job ends, its stored
log is searched for the shapes of well-known credentials — a small set taken from
gitleaks' rules (github.com/gitleaks/gitleaks, `config/gitleaks.toml`), written below as
data — and each finding names the rule and the line, never the value (SECURITY-CASES 15).

Each rule has literal `keywords` (lower case), as gitleaks does: a text none of whose
keywords appears is not searched with the rule's expression, so a clean log costs one
pass of one automaton over all keywords. Pure: no I/O.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from ahocorasick_rs import AhoCorasick, MatchKind

__all__ = ["RULES", "Finding", "Rule", "scan"]


@dataclass(frozen=True, slots=True)
class Rule:
    """A credential's shape: `pattern`'s group `secret` (or the whole match) is the value;
    `entropy`: the least Shannon entropy (bits per character) of the value to report it,
    for generic rules that would otherwise flag `password=changeme`."""

    id: str
    description: str
    keywords: tuple[str, ...]
    pattern: str
    entropy: float = 0.0


RULES: tuple[Rule, ...] = (
    Rule(
        "aws-access-token",
        "AWS access key id",
        ("akia", "asia", "abia", "acca", "a3t"),
        r"\b(?P<secret>(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})\b",
        3.0,
    ),
    Rule(
        "github-pat",
        "GitHub personal access token",
        ("ghp_",),
        r"\bghp_[0-9A-Za-z]{36}\b",
    ),
    Rule(
        "github-fine-grained-pat",
        "GitHub fine-grained personal access token",
        ("github_pat_",),
        r"\bgithub_pat_\w{82}\b",
    ),
    Rule(
        "github-oauth-app-token",
        "GitHub OAuth, app or refresh token",
        ("gho_", "ghu_", "ghs_", "ghr_"),
        r"\b(?:gho|ghu|ghs|ghr)_[0-9A-Za-z]{36}\b",
    ),
    Rule(
        "gitlab-pat",
        "GitLab personal, project or pipeline-trigger token",
        ("glpat-", "glptt-"),
        r"\b(?:glpat-[\w-]{20}|glptt-[0-9a-f]{40})\b",
    ),
    Rule(
        "gitlab-runner-token",
        "GitLab runner authentication or registration token",
        ("glrt-", "gr1348941"),
        r"\b(?:glrt-[\w-]{20}|GR1348941[\w-]{20})\b",
    ),
    Rule(
        "slack-token",
        "Slack bot, user, app or configuration token",
        ("xoxb-", "xoxp-", "xoxa-", "xoxe", "xoxr-", "xoxs-", "xapp-"),
        r"\b(?:xox[bpaers]-[0-9A-Za-z-]{10,}|xoxe\.xox[bp]-1-[0-9A-Za-z]{100,}|"
        r"xapp-\d-[A-Z0-9]+-\d+-[a-z0-9]+)\b",
    ),
    Rule(
        "slack-webhook-url",
        "Slack incoming webhook URL",
        ("hooks.slack.com",),
        r"hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/]{43,56}",
    ),
    Rule(
        "private-key",
        "private key block",
        ("private key",),
        r"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----",
    ),
    Rule(
        "shipline-token",
        "Shipline API, job or runner token",
        ("shp_",),
        r"\bshp_[ujrg]_[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])",
    ),
    Rule(
        "generic-password",
        "password, secret or API key assigned a random-looking value",
        ("pass", "pwd", "secret", "token", "api_key", "apikey", "api-key"),
        r"(?i)\b[\w.-]{0,40}?(?:passwd|password|pwd|secret|token|api[_-]?key)[\w.-]{0,20}?"
        r"[\"']?\s{0,5}"
        r"(?:=|:=|:|=>)\s{0,5}[\"']?(?P<secret>[^\s\"'`;,]{12,})",
        3.5,
    ),
)


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule that matched at `line` (1-based, of the scanned text). Never the value."""

    rule: str
    description: str
    line: int


def _entropy(value: str) -> float:
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


_COMPILED = tuple((rule, re.compile(rule.pattern)) for rule in RULES)
_KEYWORDS = sorted({k for rule in RULES for k in rule.keywords})
# Every rule's keywords in one automaton: one pass over a text says which rules to run.
_FIND_KEYWORDS = AhoCorasick(_KEYWORDS, matchkind=MatchKind.Standard)


def scan(text: str, *, limit: int = 100) -> list[Finding]:
    """The credentials `text` seems to hold, in order of line, at most `limit` (one per
    rule and line)."""
    matches = _FIND_KEYWORDS.find_matches_as_indexes(text.lower(), overlapping=True)
    present = {_KEYWORDS[i] for i, _, _ in matches}
    found: dict[tuple[int, str], Finding] = {}
    for rule, pattern in _COMPILED:
        if present.isdisjoint(rule.keywords):
            continue
        for match in pattern.finditer(text):
            value = match.groupdict().get("secret") or match.group(0)
            if rule.entropy and _entropy(value) < rule.entropy:
                continue
            line = text.count("\n", 0, match.start()) + 1
            found.setdefault((line, rule.id), Finding(rule.id, rule.description, line))
    return sorted(found.values(), key=lambda f: (f.line, f.rule))[:limit]
