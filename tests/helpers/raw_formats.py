"""Independent parsers of raw sample files, for tests that check readers and models against them."""

from __future__ import annotations

from pathlib import Path


def raw_conll(path: Path) -> list[tuple[list[str], list[str]]]:
    """(words, tags) per sentence of a two-column CoNLL file, parsed without corpora.formats.conll."""
    sents, words, tags = [], [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            if words:
                sents.append((words, tags))
            words, tags = [], []
            continue
        word, tag = line.split("\t")
        words.append(word)
        tags.append(tag)
    if words:
        sents.append((words, tags))
    return sents
