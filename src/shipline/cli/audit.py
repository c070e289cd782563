"""`shipline audit`: verify the hash chain (on the server, or an export offline) and export
it as JSON lines."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

import typer

from shipline.cli.client import JSON_OPTION, SERVER_OPTION, TOKEN_OPTION

audit_app = typer.Typer(
    name="audit",
    help="The audit trail: verify its hash chain, export it.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app)


def _verify_file(path: Path, key: Path | None) -> dict[str, object]:
    """Check an export (`shipline audit export`) without a server; with the server's
    public `key`, its signed checkpoints too."""
    from shipline.cli.client import fail
    from shipline.domain.records import AuditRecord
    from shipline.engine.audit import verify_records
    from shipline.security.provenance import ProvenanceError, load_public_key

    records: list[AuditRecord] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror or exc}")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            records.append(
                AuditRecord(
                    id=int(item["id"]),
                    at=datetime.fromisoformat(item["at"]),
                    actor=item["actor"],
                    action=item["action"],
                    decision=item["decision"],
                    project_id=item["project_id"],
                    target=item["target"],
                    reason=item["reason"],
                    request_id=item["request_id"],
                    data=item["data"],
                    prev_hash=item["prev_hash"],
                    hash=item["hash"],
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            fail(f"{path}:{number}: not an audit record of `shipline audit export` ({exc})")
    public = None
    if key is not None:
        try:
            public = load_public_key(key.read_bytes())
        except (OSError, ProvenanceError) as exc:
            fail(f"cannot use the key {key}: {exc}", exit_code=2)
    verdict = verify_records(records, public)
    broken = verdict.broken
    return {
        "ok": broken is None,
        "records": verdict.records,
        "head": verdict.head,
        "broken": None
        if broken is None
        else {"position": broken.index, "id": broken.record_id, "reason": broken.reason},
        "checkpoints": verdict.checkpoints,
        "last_checkpoint_id": verdict.last_checkpoint_id,
    }


@audit_app.command("verify")
def verify(
    file: Path | None = typer.Option(
        None, "--file", help="Check this export offline instead of the server's trail."
    ),
    key: Path | None = typer.Option(
        None, "--key", help="With --file: the server's public key, to check checkpoints."
    ),
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Recompute the whole chain; name the first edited, deleted, inserted or moved record
    and exit 1 when there is one."""
    from shipline.cli.client import connect, print_json

    if file is not None:
        verdict = _verify_file(file, key)
    else:
        with connect(server, token) as api:
            verdict = api.get("/audit/verify")
    if json_out:
        print_json(verdict)
    elif verdict["ok"]:
        sys.stdout.write(
            f"audit trail intact: {verdict['records']} records, head {verdict['head']}, "
            f"{verdict.get('checkpoints', 0)} signed checkpoint(s)\n"
        )
    else:
        broken = verdict["broken"]
        assert isinstance(broken, dict)
        sys.stdout.write(
            f"audit trail BROKEN at record {broken['id']} (position {broken['position']}): "
            f"{broken['reason']}\n"
        )
    if not verdict["ok"]:
        raise typer.Exit(1)


@audit_app.command("export")
def export(
    since: datetime | None = typer.Option(
        None, "--since", help="Only records at or after this time (ISO 8601)."
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write to this file instead of stdout."
    ),
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
) -> None:
    """Every record, oldest first, as JSON lines (admins)."""
    from shipline.cli.client import connect

    params = {"since": since.isoformat()} if since is not None else None
    with connect(server, token) as api:
        text = api.text("/audit/export", params)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
