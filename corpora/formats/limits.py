"""Size limits of the readers, and the byte stream that enforces them before a parser allocates.

Hostile or broken inputs are tiny on disk and huge once read: a gzip of one 2 GiB XML attribute or
JSON line is 2 MB, a BioC passage `offset` of 10**10 asks for 10 GB of padding. Every reader
therefore checks sizes against one per-document limit before it reads or allocates past it:

- `max_document_bytes()`: the most bytes of one record (a citation, a BioC document, a DDI file,
  a brat text, one line of a line format, one PubTator/CoNLL document) and the largest offset a
  document may declare. Default 20 MB, far above any real abstract or PMC full text (about 1 MB);
  the `BIOMED_MAX_DOCUMENT_MB` environment variable changes it (it is read at each file, so the
  child processes of `isolated_read` see it too).
- `max_collection_bytes()`: a BioC JSON collection is one JSON value and is parsed whole, so the
  whole file is bounded instead (default 256 MB, `BIOMED_MAX_JSON_COLLECTION_MB`); JSON lines are
  streamed and bounded per line.

`LimitedStream` wraps a binary stream for lxml: it counts the bytes handed to the parser since the
reader last called `mark()` (at each finished record) and raises `DocumentTooLargeError` once one
record passes the limit, so libxml2 never sees an attribute, a text node or a record larger than
the limit, whatever the file holds after it.

Tested in `tests/corpora/formats/test_limits.py`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import BinaryIO

from corpora.errors import ConfigError, DocumentTooLargeError

DOCUMENT_ENV = "BIOMED_MAX_DOCUMENT_MB"
COLLECTION_ENV = "BIOMED_MAX_JSON_COLLECTION_MB"
DEFAULT_DOCUMENT_MB = 20.0
DEFAULT_COLLECTION_MB = 256.0
_MB = 1_000_000


def _megabytes(env: str, default: float) -> int:
    raw = os.environ.get(env, "").strip()
    if not raw:
        return int(default * _MB)
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{env}={raw!r} is not a number of megabytes") from None
    if not value > 0:
        raise ConfigError(f"{env}={raw!r} must be a positive number of megabytes")
    return int(value * _MB)


def max_document_bytes() -> int:
    """The per-document limit in bytes (and the largest offset a document may declare)."""
    return _megabytes(DOCUMENT_ENV, DEFAULT_DOCUMENT_MB)


def max_collection_bytes() -> int:
    """The limit on a whole BioC JSON collection, which is parsed in one piece."""
    return _megabytes(COLLECTION_ENV, DEFAULT_COLLECTION_MB)


def describe(limit: int, env: str = DOCUMENT_ENV) -> str:
    """'the per-document limit of 20 MB (BIOMED_MAX_DOCUMENT_MB)': for error messages."""
    what = "per-document" if env == DOCUMENT_ENV else "JSON collection"
    return f"the {what} limit of {limit / _MB:g} MB (set {env} to change it)"


def too_large(path: str | Path, what: str, size: int, limit: int, *, line: int | None = None) -> DocumentTooLargeError:
    return DocumentTooLargeError(path, f"{what} ({size:,} bytes or more) is larger than {describe(limit)}", line=line)


def check_offset(
    path: str | Path, what: str, offset: int, limit: int, *, line: int | None = None, record: str | None = None
) -> None:
    """Refuse a declared offset or length that would place text past the per-document limit."""
    if offset > limit:
        raise DocumentTooLargeError(
            path,
            f"{what} {offset:,} would place text past {describe(limit)}; the file is refused before allocating it",
            line=line,
            record=record,
        )


# `&` that does not start one of the five XML entities or a character reference. A name cut at the
# end of a chunk also matches: the flag below is conservative, the tree check it enables is exact.
_OTHER_ENTITY = re.compile(rb"&(?!(?:amp|lt|gt|quot|apos);|#)")


class LimitedStream:
    """A read-only binary stream that refuses to hand more than `limit` bytes of one record to a parser.

    The reader calls `mark()` after each finished record; the count restarts there. The parser reads
    ahead by one buffer, so the count is exact to within that buffer (32 KiB in lxml).

    `other_entities` turns true once the bytes hold an `&name;` other than the five XML entities:
    only then can a record hold an entity node, so the XML readers walk records for them
    (`corpora.formats.xml_safety`) only after that (the walk costs about 10% of reading MEDLINE).
    """

    def __init__(self, raw: BinaryIO, path: str | Path, limit: int, what: str = "one record") -> None:
        self.raw = raw
        self.path = path
        self.limit = limit
        self.what = what
        self.total = 0
        self.since_mark = 0
        self.other_entities = False

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > (1 << 20):
            n = 1 << 20
        data = self.raw.read(n)
        if not self.other_entities and _OTHER_ENTITY.search(data):
            self.other_entities = True
        self.total += len(data)
        self.since_mark += len(data)
        if self.since_mark > self.limit:
            raise DocumentTooLargeError(
                self.path,
                f"{self.what} is larger than {describe(self.limit)}: more than {self.since_mark:,} bytes "
                f"without the record ending (by byte {self.total:,} of the decompressed input)",
            )
        return data

    def mark(self) -> None:
        """A record ended: the next one starts its count here."""
        self.since_mark = 0

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> LimitedStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "COLLECTION_ENV",
    "DOCUMENT_ENV",
    "LimitedStream",
    "check_offset",
    "describe",
    "max_collection_bytes",
    "max_document_bytes",
    "too_large",
]
