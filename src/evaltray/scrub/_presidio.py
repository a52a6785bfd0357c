"""Import Presidio without pulling in torch/transformers when nothing else has.

Presidio's NLP-engine package imports transformers whenever it is installed, which costs seconds at
every start even though evaltray's default engine never uses it. Blocking the two names during
Presidio's import makes its optional-import guards take the "not installed" path.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

_HEAVY = ("transformers", "torch")
_blocked = [name for name in _HEAVY if name not in sys.modules]
for _name in _blocked:
    sys.modules[_name] = None  # type: ignore[assignment]
try:
    import presidio_analyzer  # noqa: F401
    import presidio_analyzer.predefined_recognizers  # noqa: F401
    import presidio_anonymizer  # noqa: F401
finally:
    for _name in _blocked:
        if _name in sys.modules and sys.modules[_name] is None:
            del sys.modules[_name]


def huggingface_ner_recognizer() -> Any:
    """Presidio's HuggingFaceNerRecognizer class, re-imported so it sees transformers if installed."""
    from presidio_analyzer.predefined_recognizers.ner import huggingface_ner_recognizer as mod

    if getattr(mod, "hf_pipeline", None) is None:
        mod = importlib.reload(mod)
    return mod.HuggingFaceNerRecognizer
