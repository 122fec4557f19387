"""The rule for a document id that appears more than once in one input file.

Why a rule: ids are what users join and filter on, and two rows with id `1` silently double every
count. MEDLINE defines its own answer: a citation that appears again is a revised version, and the
later one wins, within a file exactly as across files (`DatasetStore.reconcile`). Other formats have
no such meaning, so the user chooses with `--on-duplicate`:

- `error` (default): the file fails, the message names both places (lines where the format has
  them, e.g. PubTator title lines; otherwise the documents' positions in the file);
- `last`: the later document replaces the earlier one (as MEDLINE does), within a file and across
  the files of the same format ingested with `last`, the later file by name winning
  (`DatasetStore.reconcile`, `supersede_groups`);
- `keep`: both are kept (the behaviour before this rule).

Under `error` and `keep` ids are not compared across files: several formats number their
documents per file (CoNLL sentences `1`, `2`, ...), so the same id in two files is usually two
documents; `last` says that they are the same document.

Tested in `tests/corpora/dataset/test_duplicates.py`.
"""

from __future__ import annotations

from pathlib import Path

from corpora.errors import ConfigError, InputError
from corpora.formats.textio import iter_lines
from corpora.schema import Document

DUPLICATE_CHOICES = ("error", "last", "keep")
LATER_WINS_FORMATS = ("pubmed-xml",)  # formats whose repeated records are revisions by definition


class DuplicateDocumentError(InputError):
    """A document id appears twice in one input file and `--on-duplicate` is `error`."""


def check_policy(policy: str) -> None:
    if policy not in DUPLICATE_CHOICES:
        raise ConfigError(f"--on-duplicate must be one of {', '.join(DUPLICATE_CHOICES)}, got {policy!r}")


def keeps_last(fmt: str, policy: str) -> bool:
    """Whether the store keeps only the last document of each id when writing this file's shard."""
    return fmt in LATER_WINS_FORMATS or policy == "last"


def duplicate_producer(fmt: str, policy: str) -> dict[str, str]:
    """What the manifest records about the rule (nothing for the default), so changing it redoes a shard."""
    check_policy(policy)
    if fmt in LATER_WINS_FORMATS or policy == "error":
        return {}
    return {"on_duplicate": policy}


class DuplicateCheck:
    """Sees the documents of one file in order; raises DuplicateDocumentError under `error`."""

    def __init__(self, path: Path, fmt: str, policy: str) -> None:
        check_policy(policy)
        self.path, self.fmt = path, fmt
        self.active = policy == "error" and fmt not in LATER_WINS_FORMATS
        self.first: dict[str, int] = {}
        self.count = 0

    def see(self, doc: Document) -> None:
        self.count += 1
        if not self.active:
            return
        first = self.first.setdefault(doc.id, self.count)
        if first == self.count:
            return
        places = _places(self.path, self.fmt, doc.id, first, self.count)
        raise DuplicateDocumentError(
            self.path,
            f"document id {doc.id} appears twice ({places}); remove one, or pass --on-duplicate last "
            "(the later one wins) or --on-duplicate keep (both kept)",
            line=None,
            record=doc.id,
        )


def _places(path: Path, fmt: str, doc_id: str, first: int, second: int) -> str:
    """`lines 1 and 7` where the format's records start on a line we can find, else the positions."""
    if fmt == "pubtator":
        lines = [n for n, line in iter_lines(path) if line.startswith(f"{doc_id}|t|")]
        if len(lines) >= 2:
            return f"lines {lines[0]} and {lines[1]}"
    return f"documents {first} and {second} of the file"


__all__ = [
    "DUPLICATE_CHOICES",
    "DuplicateCheck",
    "DuplicateDocumentError",
    "check_policy",
    "duplicate_producer",
    "keeps_last",
]
