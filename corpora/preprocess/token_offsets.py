"""Sentence and token character offsets for a whole chunk of spaCy Docs, in one vectorized pass.

Why a chunk at a time: reading the offsets off one passage takes a dozen small numpy operations,
each with a fixed cost of about a microsecond, which on an abstract (about 70 tokens a passage)
came to a fifth of the whole pipeline's time. Here each Doc gives one `to_array` call, and the
arithmetic runs once over the concatenated table of the chunk (tens of thousands of tokens).

Definitions (the same as `corpora.preprocess.pipeline` documents): a token is a non-whitespace spaCy token;
a sentence runs from its first token to the end of its last one, so whitespace never starts or
ends a sentence, sentences never overlap, and a sentence of only whitespace disappears. Each Doc
starts a new sentence, whatever its first token says: a passage (or a piece of an over-long one)
never shares a sentence with another.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from spacy.attrs import IDX, IS_SPACE, LENGTH, SENT_START

if TYPE_CHECKING:
    from spacy.tokens import Doc

_ATTRS = [IDX, LENGTH, IS_SPACE, SENT_START]
_EMPTY = np.zeros((0, 2), dtype=np.int64)


class ChunkOffsets:
    """Collects Docs (each with the character offset of its text and the group it belongs to, in
    non-decreasing group order) and returns, per group, `(sentences, tokens)` as (n, 2) int64
    arrays of [start, end) offsets, shifted into the group's own text."""

    def __init__(self, groups: int) -> None:
        self.groups = groups
        self._tables: list[np.ndarray] = []
        self._shifts: list[int] = []
        self._group_of: list[int] = []

    def add(self, doc: Doc, shift: int, group: int) -> None:
        if not 0 <= group < self.groups or (self._group_of and group < self._group_of[-1]):
            raise ValueError(f"group {group} out of order or range (last {self._group_of[-1:]}, groups {self.groups})")
        if len(doc):
            self._tables.append(doc.to_array(_ATTRS))
            self._shifts.append(shift)
            self._group_of.append(group)

    def results(self) -> list[tuple[np.ndarray, np.ndarray]]:
        if not self._tables:
            return [(_EMPTY, _EMPTY) for _ in range(self.groups)]
        lengths = np.array([len(t) for t in self._tables])
        table = np.concatenate(self._tables).view(np.int64)  # SENT_START -1 comes out as 2**64 - 1
        first_rows = np.cumsum(lengths) - lengths
        starts_sentence = table[:, 3] == 1
        starts_sentence[first_rows] = True
        sentence_of = np.cumsum(starts_sentence)
        content = table[:, 2] == 0
        starts = (table[:, 0] + np.repeat(self._shifts, lengths))[content]
        ends = starts + table[content, 1]
        tokens = np.column_stack((starts, ends))
        token_group = np.repeat(self._group_of, lengths)[content]

        sentence = sentence_of[content]
        opens = np.ones(len(sentence), dtype=bool)
        opens[1:] = sentence[1:] != sentence[:-1]
        firsts = np.flatnonzero(opens)
        lasts = np.append(firsts[1:], len(sentence)) - 1
        sentences = np.column_stack((starts[firsts], ends[lasts]))
        sentence_group = token_group[firsts]

        bounds = np.arange(self.groups + 1)
        token_cuts = np.searchsorted(token_group, bounds).tolist()
        sentence_cuts = np.searchsorted(sentence_group, bounds).tolist()
        return [
            (sentences[sentence_cuts[g] : sentence_cuts[g + 1]], tokens[token_cuts[g] : token_cuts[g + 1]])
            for g in range(self.groups)
        ]
