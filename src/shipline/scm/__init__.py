"""Source code management: checkouts of git repositories (hosted repos and webhooks come later)."""
