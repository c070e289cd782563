"""Signed checkpoints of the audit chain: the server signs (record id, hash) of the head.

A checkpoint is itself an audit record (`audit.checkpoint`) whose data holds the head it
covers and an Ed25519 signature over DSSE's pre-authentication encoding of it. Someone who
rewrites records and recomputes every hash after them gets a valid-looking chain, but
cannot sign: the checkpoint's head no longer matches the record it names.
"""

from __future__ import annotations

import base64
import binascii
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from shipline.security.provenance import key_id, pae

CHECKPOINT_ACTION = "audit.checkpoint"
PAYLOAD_TYPE = "application/vnd.shipline.audit-checkpoint+json"


def _body(head_id: int, head: str) -> bytes:
    return json.dumps({"head": head, "head_id": head_id}, sort_keys=True).encode()


def sign_checkpoint(key: Ed25519PrivateKey, head_id: int, head: str) -> dict[str, object]:
    """The data of a checkpoint record for the record `head_id` whose hash is `head`."""
    signature = key.sign(pae(PAYLOAD_TYPE, _body(head_id, head)))
    return {
        "head_id": head_id,
        "head": head,
        "sig": base64.b64encode(signature).decode(),
        "keyid": key_id(key.public_key()),
    }


def checkpoint_problem(
    data: object, hashes: dict[int, str], public: Ed25519PublicKey
) -> str | None:
    """Why a checkpoint's `data` does not hold (None when it does), given the hashes of
    the records before it by id."""
    if not isinstance(data, dict):
        return "its data is not a checkpoint"
    head_id, head, sig = data.get("head_id"), data.get("head"), data.get("sig")
    if not isinstance(head_id, int) or not isinstance(head, str) or not isinstance(sig, str):
        return "its data is not a checkpoint"
    try:
        public.verify(base64.b64decode(sig, validate=True), pae(PAYLOAD_TYPE, _body(head_id, head)))
    except (InvalidSignature, binascii.Error, ValueError):
        return "its signature is not the server's: the checkpoint was forged or edited"
    if hashes.get(head_id) != head:
        return (
            f"it signed record {head_id} with another hash: records up to {head_id} were "
            "rewritten and their hashes recomputed"
        )
    return None
