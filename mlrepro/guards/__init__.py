"""Checks of untrusted input: reviewed callables, confined paths, one numeric rule,
depth-limited JSON, printable text. Standard library only (below core)."""
