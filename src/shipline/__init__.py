"""Shipline: a self-hosted, security-first CI/CD platform."""

__version__ = "0.1.0"
