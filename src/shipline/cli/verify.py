"""`shipline verify FILE --provenance FILE.intoto.json --key KEY`: check, offline, that an
artifact is what the server built (signature, digest, builder, repository, ref)."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import typer

from shipline.cli.client import JSON_OPTION


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)


def _read(path: Path, what: str) -> bytes:
    from shipline.cli.client import fail

    try:
        return path.read_bytes()
    except OSError as exc:
        fail(f"cannot read the {what} {path}: {exc.strerror or exc}", exit_code=2)


def verify(
    artifact: Path = typer.Argument(..., help="The artifact file to check."),
    provenance: Path = typer.Option(
        ..., "--provenance", help="Its provenance (GET .../artifacts/NAME/provenance)."
    ),
    key: Path = typer.Option(
        ..., "--key", help="The server's public key (`shipline keys public`)."
    ),
    repository: str | None = typer.Option(
        None, "--repository", help="Require this repository (exactly as the server records it)."
    ),
    ref: str | None = typer.Option(
        None, "--ref", help="Require a ref matching this pattern (`refs/tags/v*`)."
    ),
    builder: list[str] = typer.Option(
        [], "--builder", help="Accept only these builder ids (repeatable; default: Shipline's)."
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Exit 0 when the artifact matches signed provenance that meets the requirements;
    otherwise say which check failed and exit 1."""
    from shipline.cli.client import fail, print_json
    from shipline.security.provenance import (
        Expectations,
        ProvenanceError,
        load_public_key,
    )
    from shipline.security.provenance import verify as check

    digest = hashlib.sha256(_read(artifact, "artifact")).hexdigest()
    envelope = _read(provenance, "provenance")
    try:
        public = load_public_key(_read(key, "key"))
        expect = Expectations(repository=repository, ref_pattern=ref)
        if builder:
            expect = Expectations(frozenset(builder), repository, ref)
        verified = check(digest, envelope, [public], expect)
    except ProvenanceError as exc:
        if json_out:
            print_json({"verified": False, "sha256": digest, "reason": str(exc)})
            raise typer.Exit(1) from None
        fail(f"{artifact} is NOT verified: {exc}")
    if json_out:
        print_json(
            {
                "verified": True,
                "sha256": digest,
                "subject": verified.subject,
                "builder": verified.builder_id,
                "repository": verified.repository,
                "ref": verified.ref,
                "commit": verified.commit,
                "job": verified.job,
            }
        )
        return
    sys.stdout.write(
        f"{artifact}: verified (sha256 {digest})\n"
        f"  subject    {verified.subject}\n"
        f"  built by   {verified.builder_id}\n"
        f"  from       {verified.repository} {verified.ref} @ {verified.commit}\n"
        f"  job        {verified.job}\n"
    )
