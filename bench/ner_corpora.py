"""Make the GUM and Universal NER English-EWT building corpora in ``bench/data/ner/`` from their repositories.

    python bench/ner_corpora.py --gum GUM_GIT_DIR --uner UNER_EWT_GIT_DIR

Reads pinned commits with ``git show`` (a clone or a bare mirror both work) and writes two-column CoNLL
(``word<TAB>tag``, a blank line between sentences, ``-DOCSTART-`` between documents), gzip'd:

``gum.conll.gz`` (amir-zeldes/gum, annotations CC BY 4.0): the genres whose texts are CC BY (academic, court,
news, interview: CC BY 4.0 / 2.5); ``gum-bysa.conll.gz``: those under CC BY-SA 3.0 (bio: Wikipedia
biographies, voyage: WikiVoyage). Each document's genre is its ``-DOCSTART-`` line's second field. GUM
marks every mention (named or not) with its entity type; a token is tagged with the type of the innermost
mention around it only when it is a singular proper noun (``NNP``), so "the governor" stays O. Leading words of
a person mention that are titles or common words and no listed name ("Governor", "Republican" in "Republican
John Cornyn", "Lord") are O as CoNLL corpora tag them. Left out: Reddit (text not distributed), and the
genres under a non-commercial licence (essay, fiction, letter, podcast, wikiHow) or with none stated in GUM's
LICENSE (conversation, speech, textbook, vlog).

``uner-ewt.conll.gz`` (UniversalNER/UNER_English-EWT, CC BY-SA 4.0): the dev and test files (web text: reviews,
e-mails, Yahoo answers, newsgroups, blogs); the train file is not in the stored snapshot. Tags PER/ORG/LOC as
given.
"""

from __future__ import annotations

import argparse
import gzip
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pii_benchmark import NER  # noqa: E402

from evaltray.core.util import atomic_write  # noqa: E402
from evaltray.scrub._names import FIRST, LAST, TITLES, WORD, fold, load_gazetteer  # noqa: E402

GUM_COMMIT = "72ce5ac14978a324c2fd18d49484e65292cbe316"
UNER_COMMIT = "8ed072de2fd24022cc62458997fe96a8fe191ea4"
#: GUM genres whose texts may be used for weights shipped under MIT: CC BY first, then CC BY-SA.
GUM_GENRES = {
    "academic": "CC BY 4.0",
    "court": "CC BY 4.0",
    "news": "CC BY 2.5",
    "interview": "CC BY 2.5",
    "bio": "CC BY-SA 3.0",
    "voyage": "CC BY-SA 3.0",
}
_GUM_TYPES = {"person": "PER", "place": "LOC", "organization": "ORG"}
#: A mention opening on a token ("(3-person-…", closed on the same token when a ")" ends it) or closing ("3)").
_MENTION = re.compile(r"\((\d+)-([a-z]+)[^()]*(\)?)|(\d+)\)")


def _git(repo: Path, commit: str, path: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "show", f"{commit}:{path}"], check=True, capture_output=True, text=True
    ).stdout


def _files(repo: Path, commit: str, folder: str) -> list[str]:
    out = subprocess.run(
        ["git", "-C", str(repo), "ls-tree", "--name-only", f"{commit}:{folder}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [f"{folder}/{name}" for name in out.split()]


def _entity(misc: str) -> str:
    return next((f[7:] for f in misc.split("|") if f.startswith("Entity=")), "")


def gum_sentence(rows: list[list[str]]) -> list[tuple[str, str]]:
    """(word, tag) of one GUM sentence: the innermost mention's type on singular proper nouns (see above)."""
    stack: list[tuple[str, str]] = []  # open mentions: (id, type)
    out: list[tuple[str, str]] = []
    for cols in rows:
        closing = []
        for ident, etype, closed, shut in _MENTION.findall(_entity(cols[9])):
            if ident:
                stack.append((ident, etype))
            if closed or shut:
                closing.append(ident or shut)
        kind = _GUM_TYPES.get(stack[-1][1], "MISC") if stack else ""
        out.append((cols[1], kind if cols[4] == "NNP" and kind else "O"))
        for ident in closing:
            for k in range(len(stack) - 1, -1, -1):
                if stack[k][0] == ident:
                    del stack[k]
                    break
    return _drop_leading_titles(out)


def title_word(word: str, gaz: dict[str, int], last: bool = False) -> bool:
    """A title, office or common word that is no given name: not part of a name when it leads one (surnames
    are left out of the test: the census list holds "The", "He", "East"). The ``last`` word of a mention is
    a name unless it is a title or a word no name list has ("Ms. Goldsmith", but not "the Petitioner")."""
    low = fold(word).rstrip(".")
    flags = gaz.get(low, 0)
    if low in TITLES or low in _PREFIXES:
        return True
    return bool(flags & WORD and not flags & (FIRST if not last else FIRST | LAST))


def _drop_leading_titles(tagged: list[tuple[str, str]]) -> list[tuple[str, str]]:
    gaz = load_gazetteer().flags
    out = list(tagged)
    i = 0
    while i < len(out):
        if out[i][1] != "PER":
            i += 1
            continue
        j = i
        while j < len(out) and out[j][1] == "PER":
            j += 1
        for k in range(i, j):  # a run of PER tokens: its leading titles and common words are no name
            if not title_word(out[k][0], gaz, last=k == j - 1):
                break
            out[k] = (out[k][0], "O")
        i = j
    return out


#: Offices and parties GUM puts inside a person mention ("Chief Justice Roberts", "Democrat Nancy Pelosi") that
#: the gazetteer also lists as names, so its word flag alone would keep them.
_PREFIXES = frozenset(
    [
        "democrat",
        "republican",
        "sen",
        "rep",
        "gov",
        "pres",
        "chief",
        "general",
        "undersecretary",
        "secretary",
        "minister",
        "king",
        "queen",
        "prince",
        "princess",
        "saint",
        "st",
        "emperor",
        "pope",
        "lord",
        "lady",
        "colonel",
        "admiral",
        "commander",
        "coach",
        "bishop",
        "cardinal",
        "i",
        "gen",
        "capt",
        "brig",
        "spc",
        "maj",
        "col",
        "cpl",
        "pvt",
        "adm",
    ]
)


def _bio(tagged: list[tuple[str, str]]) -> list[str]:
    lines, prev = [], "O"
    for word, tag in tagged:
        lines.append(f"{word}\t{'O' if tag == 'O' else ('I-' if tag == prev else 'B-') + tag}")
        prev = tag
    return lines


def gum(repo: Path, share_alike: bool) -> str:
    """The GUM genres under CC BY (or, with ``share_alike``, those under CC BY-SA) as CoNLL text."""
    lines: list[str] = []
    for path in _files(repo, GUM_COMMIT, "dep"):
        genre = path.split("_")[1] if path.startswith("dep/GUM_") else ""
        if genre not in GUM_GENRES or GUM_GENRES[genre].startswith("CC BY-SA") != share_alike:
            continue
        lines += [f"-DOCSTART-\t{genre}", ""]
        rows: list[list[str]] = []
        for line in [*_git(repo, GUM_COMMIT, path).splitlines(), ""]:
            cols = line.split("\t")
            if len(cols) == 10 and cols[0].isdigit():  # multiword-token ranges and empty nodes skipped
                rows.append(cols)
            elif not line.strip() and rows:
                lines += [*_bio(gum_sentence(rows)), ""]
                rows = []
    return "\n".join(lines) + "\n"


def uner(repo: Path) -> str:
    lines: list[str] = []
    for split in ("dev", "test"):
        for line in _git(repo, UNER_COMMIT, f"en_ewt-ud-{split}.iob2").splitlines():
            if line.startswith("# newdoc"):
                lines += ["-DOCSTART-\tewt", ""]
            elif line.startswith("#"):
                continue
            elif line.strip():
                cols = line.split("\t")
                lines.append(f"{cols[1]}\t{cols[2]}")
            elif lines and lines[-1]:
                lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gum", type=Path, required=True, help="a clone (or bare mirror) of amir-zeldes/gum")
    ap.add_argument("--uner", type=Path, required=True, help="a clone of UniversalNER/UNER_English-EWT")
    args = ap.parse_args(argv)
    for name, text in (("gum", gum(args.gum, False)), ("gum-bysa", gum(args.gum, True)), ("uner-ewt", uner(args.uner))):
        out = NER / f"{name}.conll.gz"
        atomic_write(out, gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0))
        print(f"wrote {out.name}: {text.count(chr(10) + chr(10))} sentences, {len(text) / 1e6:.1f} MB before gzip")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
