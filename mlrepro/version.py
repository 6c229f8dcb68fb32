"""The package version (its own module: the lock, the bundle and the CLI read it)."""

__version__ = "0.1.0"
