"""One exception hierarchy; the CLI turns each into ``Error: …`` and exit 1."""

from __future__ import annotations


class EvaltrayError(Exception):
    """Base of every error evaltray raises on purpose."""


class WorkspaceError(EvaltrayError):
    """The workspace is missing, locked, or its settings are invalid."""


class IngestError(EvaltrayError):
    """A source file could not be ingested (raised under ``--strict``)."""


class GateError(EvaltrayError):
    """The gate refuses a change to the tray, e.g. retiring without a reason or retiring a retired case
    (rows that may not pass are reported by ``promote``, not raised)."""


class PermissionDenied(EvaltrayError):
    """The acting user's role does not allow the operation."""


class NotFound(EvaltrayError):
    """A named candidate, case, release or user does not exist."""


class ReleaseError(EvaltrayError):
    """A release cannot be created, or one on disk is not what it claims to be."""


class QueryError(EvaltrayError):
    """A ``--where`` predicate was rejected or failed."""
