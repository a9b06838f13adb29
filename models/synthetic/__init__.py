"""Deterministic synthetic giant-panda drops, one module per thing generated (pure code: no disk I/O)."""
