"""Branch and tag protection enforced by the pre-receive hook, seen through `git push`."""

from __future__ import annotations

from tests.integration.source.conftest import Hosted


def _setup(hosted: Hosted) -> tuple[str, str]:
    hosted.project()
    dev = hosted.user("dev", "developer")
    lead = hosted.user("lead", "maintainer")
    response = hosted.api(
        "PUT", "/projects/app/protections", json={"pattern": "main", "push_role": "maintainer"}
    )
    assert response.status_code == 200, response.text
    return dev, lead


def test_a_developer_cannot_push_to_a_protected_branch(hosted: Hosted) -> None:
    dev, lead = _setup(hosted)
    lead_copy = hosted.clone("lead", lead, name="lead")
    lead_copy.write("README.md", "one\n")
    lead_copy.commit("first")
    lead_copy.git("push", "-q", "origin", "main")

    work = hosted.clone("dev", dev)
    work.write("README.md", "two\n")
    work.commit("second")
    refused = work.git("push", "origin", "main", check=False)
    assert refused.returncode != 0
    assert (
        "remote: shipline: refusing refs/heads/main: branch main is protected: pushing to it "
        "needs the maintainer role (rule 'main')" in refused.stderr
    )
    assert "[remote rejected] main -> main (pre-receive hook declined)" in refused.stderr
    ls = work.git("ls-remote", "origin", "refs/heads/main").stdout
    assert ls.split()[0] == lead_copy.git("rev-parse", "HEAD").stdout.strip()

    work.git("push", "-q", "origin", "HEAD:feature")  # unprotected branches are fine


def test_no_force_push_and_no_deletion_even_for_maintainers(hosted: Hosted) -> None:
    _dev, lead = _setup(hosted)
    work = hosted.clone("lead", lead)
    work.write("a", "1")
    work.commit("one")
    work.write("a", "2")
    work.commit("two")
    work.git("push", "-q", "origin", "main")
    work.git("reset", "-q", "--hard", "HEAD~1")
    work.write("b", "rewritten")
    work.commit("rewritten history")
    forced = work.git("push", "--force", "origin", "main", check=False)
    assert forced.returncode != 0
    assert "force-pushes (updates that are not fast-forwards) are refused" in forced.stderr
    deleted = work.git("push", "origin", "--delete", "main", check=False)
    assert deleted.returncode != 0
    assert "branch main is protected: it cannot be deleted" in deleted.stderr

    hosted.api(
        "PUT",
        "/projects/app/protections",
        json={"pattern": "main", "push_role": "maintainer", "allow_force_push": True},
    )
    work.git("push", "-q", "--force", "origin", "main")


def test_protected_tags_and_server_refs(hosted: Hosted) -> None:
    dev, _lead = _setup(hosted)
    assert (
        hosted.api(
            "PUT",
            "/projects/app/protections",
            json={"kind": "tag", "pattern": "v*", "push_role": "admin"},
        ).status_code
        == 200
    )
    work = hosted.clone("dev", dev)
    work.commit("x")
    work.git("push", "-q", "origin", "HEAD:feature")
    work.git("tag", "v1")
    refused = work.git("push", "origin", "v1", check=False)
    assert "tag v1 is protected: pushing to it needs the admin role" in refused.stderr
    work.git("tag", "nightly")
    work.git("push", "-q", "origin", "nightly")
    sneaky = work.git("push", "origin", "HEAD:refs/pull/1/head", check=False)
    assert sneaky.returncode != 0
    assert "only branches (refs/heads/...) and tags (refs/tags/...) can be pushed" in sneaky.stderr


def test_protection_rules_api_and_roles(hosted: Hosted) -> None:
    dev, _lead = _setup(hosted)
    rules = hosted.api("GET", "/projects/app/protections", token=dev).json()["items"]
    assert [(r["kind"], r["pattern"], r["push_role"]) for r in rules] == [
        ("branch", "main", "maintainer")
    ]
    denied = hosted.api("PUT", "/projects/app/protections", token=dev, json={"pattern": "x"})
    assert denied.status_code == 403
    bad = hosted.api("PUT", "/projects/app/protections", json={"pattern": "[oops"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "pattern"
    assert hosted.api("DELETE", f"/projects/app/protections/{rules[0]['id']}").status_code == 204
    assert hosted.api("DELETE", f"/projects/app/protections/{rules[0]['id']}").status_code == 404
    audit = hosted.api("GET", "/audit", params={"action": "protection.set"}).json()["items"]
    assert audit and audit[-1]["target"] == "branch:main"
