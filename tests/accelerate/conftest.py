"""Fixtures for the accelerated runtime's tests (helpers live in ``accel_helpers``)."""

from __future__ import annotations

from accel_helpers import example_pipelines

__all__ = ["example_pipelines"]
