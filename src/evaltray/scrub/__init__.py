"""PII scrubbing: Presidio-backed detection, consistent placeholders per trace, an optional vault.

>>> from evaltray.scrub import Scrubber, PlaceholderMap
>>> Scrubber().scrub_text("Mail jane.doe@example.com", PlaceholderMap())
'Mail <EMAIL_1>'
"""

from . import _presidio  # noqa: F401  (imports Presidio without torch; keep first)
from ._engine import ENTITIES, Scrubber, ScrubError, ScrubResult, resolve_entities
from ._names import GazetteerNameRecognizer, load_gazetteer
from ._placeholders import LABELS, PLACEHOLDER_RE, PlaceholderMap
from ._vault import KEY_ENV, Vault, VaultError

__all__ = [
    "ENTITIES",
    "KEY_ENV",
    "LABELS",
    "PLACEHOLDER_RE",
    "GazetteerNameRecognizer",
    "PlaceholderMap",
    "ScrubError",
    "ScrubResult",
    "Scrubber",
    "Vault",
    "VaultError",
    "load_gazetteer",
    "resolve_entities",
]
