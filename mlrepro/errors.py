"""Error types and the exit-code table.

Every user-facing failure is an ``MlreproError``: a message that names the problem and a
hint that names the fix. The CLI maps the error class to an exit code in one place.
"""

from __future__ import annotations

from mlrepro.redaction import scrub

# Exit codes (documented in README.md).
EXIT_OK = 0
EXIT_NOT_REPRODUCED = 1  # verify found a difference, or predict rejected rows
EXIT_USAGE = 2  # bad usage or manifest
EXIT_DATA = 3  # data / schema error
EXIT_ARTIFACT = 4  # artifact missing, corrupted or tampered
EXIT_SOURCE = 5  # source database unreachable
EXIT_INTERNAL = 70  # a bug in mlrepro (an unexpected exception); sysexits EX_SOFTWARE
EXIT_INTERRUPTED = 130  # Ctrl-C


class MlreproError(Exception):
    """Base error: ``message`` says what went wrong, ``hint`` what to do about it."""

    exit_code = EXIT_USAGE
    kind = "error"

    def __init__(self, message: str, hint: str | None = None) -> None:
        message = scrub(message) or ""  # a secret never reaches a message, log or JSON
        hint = scrub(hint)
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"

    def to_dict(self) -> dict[str, object]:
        return {
            "error": self.kind,
            "message": self.message,
            "hint": self.hint,
            "exit_code": self.exit_code,
        }


class UsageError(MlreproError):
    """Bad command-line usage."""

    kind = "usage"


class ManifestError(MlreproError):
    """mlrepro.yaml is missing, malformed or invalid."""

    kind = "manifest"


class DataError(MlreproError):
    """The data does not fit what the pipeline expects (schema, types, values)."""

    exit_code = EXIT_DATA
    kind = "data"


class PredictionRejected(MlreproError):
    """Input rows were rejected at prediction time."""

    exit_code = EXIT_NOT_REPRODUCED
    kind = "rejected"


class ArtifactError(MlreproError):
    """An artifact or the lock file is missing, corrupted or does not match its fingerprint."""

    exit_code = EXIT_ARTIFACT
    kind = "artifact"


class SourceError(MlreproError):
    """The source database could not be reached or the query failed."""

    exit_code = EXIT_SOURCE
    kind = "source"


class InternalError(MlreproError):
    """An unexpected exception: a bug in mlrepro, reported without secrets."""

    exit_code = EXIT_INTERNAL
    kind = "internal"


class ConcurrencyError(MlreproError):
    """Another mlrepro process holds the project lock."""

    exit_code = EXIT_USAGE
    kind = "busy"


class FingerprintError(MlreproError, TypeError):
    """A fitted model holds an object that cannot be fingerprinted deterministically.

    Also a ``TypeError``: callers that fingerprint arbitrary objects may catch either.
    """

    exit_code = EXIT_USAGE
    kind = "fingerprint"


class ReadOnlyError(MlreproError):
    """A command must write somewhere it cannot (a read-only mount, no permission)."""

    exit_code = EXIT_USAGE
    kind = "read-only"


class EnvironmentMismatch(MlreproError):
    """A package that matters to the model differs from the recorded environment."""

    exit_code = EXIT_NOT_REPRODUCED
    kind = "environment"


class InstallError(MlreproError):
    """Building an environment failed: the package index refused or could not be reached."""

    exit_code = EXIT_SOURCE
    kind = "install"
