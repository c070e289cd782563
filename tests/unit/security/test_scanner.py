"""The post-run log scanner (SECURITY-CASES 15): known credential shapes are found, with
the rule and the line and never the value; ordinary log text is not."""

from __future__ import annotations

import random
import string

import pytest

from shipline.security.scanner import RULES, scan

rng = random.Random(15)


def chars(alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


ALNUM = string.ascii_letters + string.digits
# Samples are built at run time: no credential-shaped string sits in the repository.
SAMPLES = {
    "aws-access-token": "AK" + "IA" + chars(string.ascii_uppercase + "234567", 16),
    "github-pat": "gh" + "p_" + chars(ALNUM, 36),
    "github-fine-grained-pat": "github" + "_pat_" + chars(ALNUM + "_", 82),
    "github-oauth-app-token": "gh" + "s_" + chars(ALNUM, 36),
    "gitlab-pat": "gl" + "pat-" + chars(ALNUM, 20),
    "gitlab-runner-token": "gl" + "rt-" + chars(ALNUM, 20),
    "slack-token": "xo" + "xb-" + chars(string.digits, 12) + "-" + chars(ALNUM, 24),
    "slack-webhook-url": "https://hooks.slack" + ".com/services/" + chars(ALNUM, 44),
    "private-key": "-----BEGIN RSA PRIV" + "ATE KEY-----",
    "shipline-token": "sh" + "p_j_" + chars(ALNUM + "-_", 43),
    "generic-password": "DB_PASSWORD=" + chars(ALNUM + "!#%", 20),
}


def test_every_rule_has_a_sample() -> None:
    assert {rule.id for rule in RULES} == set(SAMPLES)


@pytest.mark.parametrize(("rule", "value"), sorted(SAMPLES.items()))
def test_each_credential_shape_is_found_with_its_line_and_not_its_value(
    rule: str, value: str
) -> None:
    text = f"building\nstep 2\n  config: {value} (loaded)\ndone\n"
    found = scan(text)
    assert [(f.rule, f.line) for f in found] == [(rule, 3)]
    assert value not in repr(found)


def test_ordinary_log_text_is_clean() -> None:
    text = "\n".join(
        [
            "password=changeme",  # too plain for the generic rule
            "password: ********",
            "token: ***",
            "API_KEY=aaaaaaaaaaaaaaaaaaaa",
            "run: echo ${{ secrets.TOKEN }}",
            "akiapolis ghp_short glpat- xoxb-1",
            "-----BEGIN PUBLIC KEY-----",
            "checking shp_ tokens: shp_u_tooshort",
        ]
        + [f"[{i:05d}] compiled module {i} in 3 ms" for i in range(1000)]
    )
    assert scan(text) == []


def test_findings_are_sorted_one_per_rule_and_line_and_limited() -> None:
    aws, pat = SAMPLES["aws-access-token"], SAMPLES["github-pat"]
    text = f"{pat}\nx\n{aws} {aws}\n" * 3
    found = scan(text)
    assert [(f.line, f.rule) for f in found][:3] == [
        (1, "github-pat"),
        (3, "aws-access-token"),
        (4, "github-pat"),
    ]
    assert len(found) == 6
    assert len(scan(text, limit=2)) == 2
