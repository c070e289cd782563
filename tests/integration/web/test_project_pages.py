"""Secrets, webhook deliveries, runners and the project overview's DORA figures, through a
browser-like client: what each role sees, what the server refuses (403 even for a form
posted by hand, 403 without the CSRF token), and that a secret's value never comes back."""

from __future__ import annotations

import re
from datetime import timedelta

from shipline.domain.deployments import DeploymentKind, DeploymentState
from shipline.domain.source import Forge
from shipline.engine.runners import RunnerService
from shipline.store.ports import NewDeployment, NewRelease
from shipline.testing import FrozenClock
from tests.integration.web.conftest import Web, csrf, no_inline_code

VALUE = "s3cr3t-<b>value</b>-do-not-show"


def test_secrets_are_listed_set_and_deleted_but_never_shown(web: Web) -> None:
    web.project()
    web.user("maya", role="maintainer")
    web.user("dev", role="developer")
    web.user("viewer", role="viewer")
    maya = web.signed_in("maya")
    page = maya.get("/ui/projects/app/secrets")
    assert page.status_code == 200
    no_inline_code(page.text)
    assert 'type="password"' in page.text and "No secrets yet." in page.text

    answers = []
    for environment in ("", "production"):
        answers.append(
            maya.post(
                "/ui/projects/app/secrets",
                data={
                    "csrf_token": csrf(page.text),
                    "name": "DEPLOY_KEY",
                    "environment": environment,
                    "value": VALUE,
                },
            )
        )
    assert [a.status_code for a in answers] == [303, 303]
    listed = maya.get(answers[1].headers["location"])
    assert "Secret DEPLOY_KEY for environment production created." in listed.text
    assert listed.text.count("<code>DEPLOY_KEY</code>") == 2
    assert "environment <strong>production</strong>" in listed.text and "maya" in listed.text
    # a too-short value is refused with the service's message, which holds no value
    # (not hex digits: the page holds a random CSRF token and a request id)
    short = maya.post(
        "/ui/projects/app/secrets",
        data={"csrf_token": csrf(page.text), "name": "TINY", "value": "xyz"},
    )
    assert short.status_code == 422 and "xyz" not in short.text

    # developers read names; neither they nor viewers may change anything
    dev = web.signed_in("dev")
    dev_page = dev.get("/ui/projects/app/secrets")
    assert dev_page.status_code == 200 and "Set a secret" not in dev_page.text
    forged = dev.post(
        "/ui/projects/app/secrets",
        data={"csrf_token": csrf(dev_page.text), "name": "DEPLOY_KEY", "value": "pwned-value"},
    )
    assert forged.status_code == 403
    viewer = web.signed_in("viewer")
    assert viewer.get("/ui/projects/app/secrets").status_code == 403
    web.user("stranger")  # no role in the project: it does not exist for them
    stranger = web.signed_in("stranger")
    for url in ("secrets", "deliveries", "environments"):
        assert stranger.get(f"/ui/projects/app/{url}").status_code == 404, url
    token = csrf(viewer.get("/ui/tokens").text)
    assert (
        viewer.post(
            "/ui/projects/app/secrets/delete", data={"csrf_token": token, "name": "DEPLOY_KEY"}
        ).status_code
        == 403
    )
    # without the CSRF token even the maintainer's form is refused
    no_csrf = maya.post(
        "/ui/projects/app/secrets", data={"name": "OTHER", "value": "another-value"}
    )
    assert no_csrf.status_code == 403 and "did not come from this dashboard" in no_csrf.text

    deleted = maya.post(
        "/ui/projects/app/secrets/delete",
        data={"csrf_token": csrf(page.text), "name": "DEPLOY_KEY", "environment": "production"},
    )
    assert deleted.status_code == 303
    after = maya.get("/ui/projects/app/secrets").text
    assert after.count("<code>DEPLOY_KEY</code>") == 1
    missing = maya.post(
        "/ui/projects/app/secrets/delete",
        data={"csrf_token": csrf(page.text), "name": "NOPE"},
    )
    assert missing.status_code == 404

    # the value appears in no page, answer or audit record
    pages = [page, *answers, listed, short, dev_page, forged, no_csrf, deleted]
    pages.append(maya.get("/ui/audit"))
    for response in pages:
        assert VALUE not in response.text and "s3cr3t" not in response.text
        assert VALUE not in str(response.headers)
    actions = web.audit_actions()
    assert ("maya", "secret.set", "allowed") in actions
    assert ("dev", "secret.set", "denied") in actions
    assert ("maya", "dashboard.csrf", "denied") in actions


def test_webhook_deliveries_are_listed_and_only_admins_redeliver(web: Web) -> None:
    project_id = web.project()
    web.user("maya", role="maintainer")
    web.user("viewer", role="viewer")
    web.user("boss", role="admin")
    with web.store.transaction() as tx:
        ping = tx.deliveries.create(
            project_id, Forge.GITHUB, "d-<b>1</b>", "ping", b"{}", now=web.context.clock.now()
        )
        tx.deliveries.set_outcome(ping.id, "processed", "pong")
    maya = web.signed_in("maya")
    page = maya.get("/ui/projects/app/deliveries")
    assert page.status_code == 200
    no_inline_code(page.text)
    assert "d-&lt;b&gt;1&lt;/b&gt;" in page.text and "<b>1</b>" not in page.text
    assert "processed" in page.text and "github" in page.text and "Redeliver" not in page.text
    forged = maya.post(
        f"/ui/projects/app/deliveries/{ping.id}/redeliver", data={"csrf_token": csrf(page.text)}
    )
    assert forged.status_code == 403
    assert web.signed_in("viewer").get("/ui/projects/app/deliveries").status_code == 403

    boss = web.signed_in("boss")
    admin_page = boss.get("/ui/projects/app/deliveries")
    assert "Redeliver" in admin_page.text
    again = boss.post(
        f"/ui/projects/app/deliveries/{ping.id}/redeliver",
        data={"csrf_token": csrf(admin_page.text)},
    )
    assert again.status_code == 303
    assert "redelivered 1×" in boss.get("/ui/projects/app/deliveries").text
    assert ("boss", "webhook.redeliver", "allowed") in web.audit_actions()


def test_runners_are_shown_to_admins_who_pause_resume_and_remove_them(web: Web) -> None:
    assert isinstance(web.context.clock, FrozenClock)
    service = RunnerService(web.store, web.context.clock, web.access)
    web.context.runners = service
    web.user("boss", admin=True)
    web.user("dev")
    boss = web.signed_in("boss")
    empty = boss.get("/ui/runners")
    assert empty.status_code == 200 and "No remote runner is registered" in empty.text
    with web.store.transaction() as tx:
        admin = tx.users.get("boss")
    assert admin is not None
    from shipline.domain.records import TokenKind
    from shipline.engine.access import Principal

    me = Principal(admin.id, admin.name, True, 0, TokenKind.USER)
    registration, _ = service.create_registration_token(me, "ci")
    fast, _ = service.register(registration, "fast-<i>box</i>", ["linux", "gpu"], "1.2.3", 4)
    slow, _ = service.register(registration, "slow", [], "1.0.0", 1)
    service.seen(fast)
    web.context.clock.advance(timedelta(hours=1))
    service.seen(service.get(me, slow.id).runner)

    page = boss.get("/ui/runners")
    no_inline_code(page.text)
    rows = {
        m.group(1): m.group(2)
        for m in re.finditer(
            r'<th scope="row">([^<]*(?:&lt;i&gt;box&lt;/i&gt;)?)</th>(.*?)</tr>', page.text, re.S
        )
    }
    assert set(rows) == {"fast-&lt;i&gt;box&lt;/i&gt;", "slow"}
    assert (
        "Offline" in rows["fast-&lt;i&gt;box&lt;/i&gt;"]
        and "gpu" in rows["fast-&lt;i&gt;box&lt;/i&gt;"]
    )
    assert "Online" in rows["slow"] and "1.0.0" in rows["slow"]

    token = csrf(page.text)
    assert boss.post(f"/ui/runners/{slow.id}/pause", data={"csrf_token": token}).status_code == 303
    assert service.get(me, slow.id).runner.paused
    assert "Paused" in boss.get("/ui/runners").text
    assert boss.post(f"/ui/runners/{slow.id}/resume", data={"csrf_token": token}).status_code == 303
    assert not service.get(me, slow.id).runner.paused

    dev = web.signed_in("dev")
    assert dev.get("/ui/runners").status_code == 403
    assert "/ui/runners" not in dev.get("/ui/").text  # not offered either
    dev_token = csrf(dev.get("/ui/tokens").text)
    refused = dev.post(f"/ui/runners/{fast.id}/remove", data={"csrf_token": dev_token})
    assert refused.status_code == 403
    assert boss.post(f"/ui/runners/{fast.id}/remove", data={"csrf_token": token}).status_code == 303
    assert "fast-" not in boss.get("/ui/runners").text
    assert ("boss", "runner.remove", "allowed") in web.audit_actions()


def _deploy(
    web: Web,
    project_id: int,
    run_id: int,
    release: int,
    environment: str,
    kind: DeploymentKind,
    state: DeploymentState,
    minutes: float,
) -> None:
    clock = web.context.clock
    assert isinstance(clock, FrozenClock)
    with web.store.transaction() as tx:
        d = tx.deployments.create(
            NewDeployment(
                project_id, environment, release, kind, "maya", "refs/heads/main", "a" * 40
            ),
            now=clock.now(),
        )
        tx.deployments.set_state(d.id, DeploymentState.IN_PROGRESS, now=clock.now())
    clock.advance(timedelta(minutes=minutes))
    with web.store.transaction() as tx:
        tx.deployments.set_state(
            d.id,
            state,
            now=clock.now(),
            reason="health check failed" if state is DeploymentState.ROLLED_BACK else "",
        )
    clock.advance(timedelta(minutes=1))


def test_the_overview_shows_dora_figures_of_production(web: Web) -> None:
    project_id = web.project()
    clock = web.context.clock
    assert isinstance(clock, FrozenClock)
    run_id = web.seed_run(project_id)
    clock.advance(timedelta(hours=2))  # the commit's run was created two hours before
    with web.store.transaction() as tx:
        release = tx.releases.create(
            NewRelease(
                project_id,
                "app",
                "sha256:" + "b" * 64,
                "c" * 64,
                run_id,
                "build",
                "refs/heads/main",
                "a" * 40,
                "shipline",
                "maya",
            ),
            now=clock.now(),
        ).id
    ok, rolled = DeploymentState.SUCCESS, DeploymentState.ROLLED_BACK
    _deploy(web, project_id, run_id, release, "staging", DeploymentKind.DEPLOY, ok, 5)
    _deploy(web, project_id, run_id, release, "production", DeploymentKind.DEPLOY, ok, 10)
    _deploy(web, project_id, run_id, release, "production", DeploymentKind.DEPLOY, rolled, 20)
    _deploy(web, project_id, run_id, release, "production", DeploymentKind.DEPLOY, ok, 10)
    _deploy(web, project_id, run_id, release, "production", DeploymentKind.DEPLOY, ok, 10)
    web.user("viewer", role="viewer")
    page = web.signed_in("viewer").get("/ui/projects/app")
    assert page.status_code == 200
    no_inline_code(page.text)
    text = re.sub(r"<[^>]+>", " ", page.text)
    text = re.sub(r"\s+", " ", text)
    assert "Deployments per day 0.10 3 successful in 30 days" in text
    # lead times 2 h 16, 2 h 48 and 2 h 59 (each deployment takes minutes, plus one between)
    assert "Lead time, commit to production (median) 2 h 48 min 3 changes measured" in text
    assert "Change failure rate 25 % 1 of 4 changes failed" in text
    assert "Time to restore (median) 20 min 00 s 1 restored" in text
    assert page.text.count('<rect class="bar ok"') == 1  # one day, three deployments
    assert '<rect class="bar bad"' in page.text and "1 failed</title>" in page.text
    # another environment counts as production when asked
    staging = web.signed_in("viewer").get(
        "/ui/projects/app", params={"production": "staging", "days": "7"}
    )
    assert "1 successful in 7 days" in staging.text
    bad = web.signed_in("viewer").get("/ui/projects/app", params={"production": "<script>"})
    assert bad.status_code == 422 and "<script>" not in bad.text


def test_a_failed_step_links_to_its_failing_line(web: Web) -> None:
    from shipline.domain.status import Conclusion

    web.project()
    run_id = web.trigger()
    lines = [
        "collected 3 items",
        "test_a PASSED",
        "test_b FAILED <assert>",
        "Error: Process completed with exit code 1.",
    ]
    web.run_job(run_id, lines, Conclusion.FAILURE)
    web.user("viewer", role="viewer")
    html = web.signed_in("viewer").get(f"/ui/runs/{run_id}").text
    assert 'href="#L3">✗ Go to the failing line (3)</a>' in html
    assert '<div class="line failing" id="L3">' in html and html.count("line failing") == 1
    assert "test_b FAILED &lt;assert&gt;" in html
    ok_run = web.trigger()
    web.run_job(ok_run, ["fine"])
    assert "Go to the failing line" not in web.signed_in("viewer").get(f"/ui/runs/{ok_run}").text
