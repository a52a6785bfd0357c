"""One exception hierarchy; the CLI turns each into ``Error: …`` and exit 1."""

from __future__ import annotations


class EvaltrayError(Exception):
    """Base of every error evaltray raises on purpose."""


class WorkspaceError(EvaltrayError):
    """The workspace is missing, locked, or its settings are invalid."""


class IngestError(EvaltrayError):
    """A source file could not be ingested (raised under ``--strict``)."""


class GateError(EvaltrayError):
    """A row may not pass the validation gate: incomplete six-tuple or no valid sign-off."""


class PermissionDenied(EvaltrayError):
    """The acting user's role does not allow the operation."""


class NotFound(EvaltrayError):
    """A named candidate, case, release or user does not exist."""


class ReleaseError(EvaltrayError):
    """A release cannot be created, or one on disk is not what it claims to be."""


class QueryError(EvaltrayError):
    """A ``--where`` predicate was rejected or failed."""
