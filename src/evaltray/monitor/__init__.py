"""Integrity monitors: what keeps a golden tray honest after it is built.

- :mod:`.corpus`: corpora streamed as documents (JSONL, text, Parquet, prompt and judge files), bad lines
  reported per line;
- :mod:`.grams`: word n-gram hashing in numpy, the tray's index and the corpus probe;
- :mod:`.contamination`: exact, n-gram, near-verbatim and paraphrase matches with their spans, provenance
  against a training cutoff;
- :mod:`.verify`: an LLM's second opinion on paraphrase candidates;
- :mod:`.releases`: a release against corpora, the exclusion list, contaminated cases retired;
- :mod:`.registered`: corpora checked on every promote and release, prompt examples tagged do-not-use-in-eval;
- :mod:`.leakage`: the golden pass rate against the live one (amber 15, red 20 points);
- :mod:`.hooks`: the monitors registered in :data:`MONITORS` and into the tray's promote and release checks.

Importing this package registers the hooks; the CLI imports it, and scripts calling ``promote`` or
``create_release`` through the API import it to have the checks run.
"""

from __future__ import annotations

from .hooks import MONITORS, Monitor, run_monitors

__all__ = ["MONITORS", "Monitor", "run_monitors"]
