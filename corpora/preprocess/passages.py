"""Passages as plain values, and the cutting of passages too long for the pipeline.

Each passage goes through the pipeline on its own (no sentence crosses a passage boundary), as a
`(passage id, text, start offset)` tuple: plain values that cross process boundaries. A passage
longer than the pipeline's `max_length` is cut at the safest place in reach, and every such event
becomes a note that the calling process logs.

Tested in `tests/corpora/preprocess/test_documents.py`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from corpora.errors import MalformedInputError
from corpora.schema import Document

_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f]")
_SAFE_CUTS = (re.compile(r"\n[^\S\n]*\n"), re.compile(r"\n"), re.compile(r"[.!?][)\]\"']*\s"), re.compile(r"\s"))

PassageTask = tuple[str, str, int]  # passage id, text, start offset in the document text
DocTask = tuple[str, tuple[PassageTask, ...]]  # document id, passages in text order


def document_task(doc: Document) -> DocTask:
    """The plain values of `doc` that preprocessing needs: its passages in text order."""
    for p in doc.passages:
        if not p.offsets:
            raise MalformedInputError(
                doc.source.path or "<document>", f"passage {p.id!r} has no offsets", record=doc.id
            )
    ordered = sorted(doc.passages, key=lambda p: p.offsets[0][0])
    return doc.id, tuple((p.id, p.text, p.offsets[0][0]) for p in ordered)


def passage_pieces(text: str, max_length: int, where: str, notes: list[str]) -> Iterator[tuple[str, int]]:
    """The text(s) to run the pipeline on for one passage, with their offsets in the passage.

    Whitespace-only passages are skipped; lone surrogates (which spaCy cannot hash) are replaced by
    U+FFFD one for one, so offsets stay valid; passages longer than `max_length` are cut at blank
    lines, newlines, sentence ends or whitespace. Each such event adds a note.
    """
    if not text:
        return
    if text.isspace():
        notes.append(f"{where}: only whitespace ({len(text)} characters), skipped")
        return
    if _SURROGATE.search(text):
        notes.append(f"{where}: lone UTF-16 surrogates replaced by U+FFFD for tokenization (offsets unchanged)")
        text = _SURROGATE.sub("\ufffd", text)
    if m := _CONTROL.search(text):
        notes.append(f"{where}: control character U+{ord(m.group()):04X} at {m.start()} (kept inside tokens)")
    if len(text) <= max_length:
        yield text, 0
        return
    cuts = cut_points(text, max_length)
    mid_word = [c for c in cuts if not text[c].isspace() and not text[c - 1].isspace()]
    notes.append(
        f"{where}: {len(text)} characters, more than the pipeline's max_length {max_length}: "
        f"processed in {len(cuts) + 1} pieces cut at {cuts}; sentences do not cross those cuts"
        + (f"; no whitespace to cut at, so words are split at {mid_word}" if mid_word else "")
    )
    bounds = [0, *cuts, len(text)]
    for a, b in zip(bounds, bounds[1:]):
        yield text[a:b], a


def cut_points(text: str, max_length: int) -> list[int]:
    """Offsets at which to cut `text` into pieces of at most `max_length` characters.

    Each cut is the last blank line, else newline, else sentence end, else whitespace in the second
    half of the window (the whitespace starts the next piece, which is harmless: whitespace is never
    part of a token); only text without any whitespace is cut mid-word.
    """
    cuts: list[int] = []
    pos = 0
    while len(text) - pos > max_length:
        lo, hi = pos + max_length // 2, pos + max_length
        cut = hi
        for pattern in _SAFE_CUTS:
            last = None
            for last in pattern.finditer(text, lo, hi):
                pass
            if last is not None:
                cut = last.end() - 1 if pattern is _SAFE_CUTS[2] else last.start()
                break
        cut = max(cut, pos + 1)
        cuts.append(cut)
        pos = cut
    return cuts
