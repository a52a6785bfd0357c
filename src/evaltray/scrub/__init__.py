"""PII scrubbing: Presidio-backed detection, consistent placeholders per trace, an optional vault.

>>> from evaltray.scrub import Scrubber, PlaceholderMap
>>> Scrubber().scrub_text("Mail jane.doe@example.com", PlaceholderMap())
'Mail <EMAIL_1>'
"""

from . import _presidio  # noqa: F401  (imports Presidio without torch; keep first)
from ._engine import ENTITIES, RECOGNIZERS, Scrubber, ScrubError, ScrubResult, resolve_entities
from ._names import GazetteerNameRecognizer, load_gazetteer
from ._placeholders import LABELS, PLACEHOLDER_RE, PlaceholderMap
from ._store import (
    QUARANTINED,
    ScrubConfig,
    StoreScrub,
    TableScrub,
    create_vault_key,
    open_vault,
    pseudonym,
    reveal,
    save_sealed,
    scrub_rows,
    scrub_store,
    scrub_table,
    vault_file,
    vault_key_path,
)
from ._vault import KEY_ENV, Vault, VaultError

__all__ = [
    "create_vault_key",
    "reveal",
    "ENTITIES",
    "KEY_ENV",
    "LABELS",
    "PLACEHOLDER_RE",
    "QUARANTINED",
    "RECOGNIZERS",
    "GazetteerNameRecognizer",
    "PlaceholderMap",
    "ScrubConfig",
    "ScrubError",
    "ScrubResult",
    "Scrubber",
    "StoreScrub",
    "TableScrub",
    "Vault",
    "VaultError",
    "load_gazetteer",
    "open_vault",
    "pseudonym",
    "resolve_entities",
    "save_sealed",
    "scrub_rows",
    "scrub_store",
    "scrub_table",
    "vault_file",
    "vault_key_path",
]
