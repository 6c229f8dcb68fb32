"""Refused: what the compiler and its converters raise for a pipeline they cannot reproduce."""

from __future__ import annotations

from mlrepro.errors import MlreproError


class Refused(MlreproError):
    """The pipeline holds something the accelerated runtime cannot reproduce exactly."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"cannot accelerate the pipeline: {reason}",
            hint="build the bundle without --accelerate (the reference runtime handles it)",
        )
        self.reason = reason
