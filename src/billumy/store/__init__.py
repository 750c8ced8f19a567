"""Persistence: small async protocols and their adapters."""
