"""Security: masking of secret values in output (secrets, trust, auth, provenance and audit
follow in their issues)."""
