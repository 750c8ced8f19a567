"""Shared state for several Billumy processes: Redis when configured, in-process otherwise."""
