"""ChunkOffsets against a plain per-token reading of the same spaCy Docs."""

from __future__ import annotations

import numpy as np
import pytest
import spacy
from spacy.tokens import Doc

from corpora.preprocess.token_offsets import ChunkOffsets


def _plain(doc: Doc, shift: int) -> tuple[list, list]:
    """Tokens and trimmed sentences read token by token (the definition, written out)."""
    tokens = [(t.idx + shift, t.idx + len(t.text) + shift) for t in doc if not t.is_space]
    sentences = []
    for sent in doc.sents:
        words = [t for t in sent if not t.is_space]
        if words:
            sentences.append((words[0].idx + shift, words[-1].idx + len(words[-1].text) + shift))
    return sentences, tokens


@pytest.fixture(scope="module")
def nlp():
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    return nlp


def test_matches_token_by_token_reading(nlp):
    texts = [
        "IL-2 (interleukin 2) rose.  Then it fell!\n\nA new paragraph ",
        "  leading spaces. Two sentences.",
        "   ",  # whitespace only: no token, no sentence
        "",  # empty: no token at all
        "One.",
        "Ends with spaces.   \n ",
    ]
    docs = list(nlp.pipe(texts))
    groups = [0, 0, 1, 1, 3, 3]  # group 2 gets nothing
    shifts = [0, 61, 0, 3, 100, 105]
    chunk = ChunkOffsets(4)
    for doc, shift, group in zip(docs, shifts, groups):
        chunk.add(doc, shift, group)
    got = chunk.results()
    assert len(got) == 4
    for g in range(4):
        want_s, want_t = [], []
        for doc, shift, group in zip(docs, shifts, groups):
            if group == g:
                s, t = _plain(doc, shift)
                want_s += s
                want_t += t
        sentences, tokens = got[g]
        assert sentences.dtype == tokens.dtype == np.int64
        assert [tuple(x) for x in sentences.tolist()] == want_s
        assert [tuple(x) for x in tokens.tolist()] == want_t
    assert got[0][0].tolist()[:2] == [[0, 26], [28, 41]]  # "IL-2 ... rose." / "Then it fell!"
    assert got[2][0].shape == got[2][1].shape == (0, 2)


def test_each_doc_starts_a_sentence(nlp):
    # Two Docs in one group: the second's first token starts a sentence even though spaCy's
    # sentencizer would not mark a first token (it has no token before it in that Doc).
    a, b = nlp("no final period"), nlp("and more words")
    chunk = ChunkOffsets(1)
    chunk.add(a, 0, 0)
    chunk.add(b, 20, 0)
    sentences, _ = chunk.results()[0]
    assert sentences.tolist() == [[0, 15], [20, 34]]


def test_empty_chunk_and_order_checks(nlp):
    assert [(s.shape, t.shape) for s, t in ChunkOffsets(2).results()] == [((0, 2), (0, 2))] * 2
    chunk = ChunkOffsets(2)
    chunk.add(nlp("x"), 0, 1)
    with pytest.raises(ValueError, match="out of order"):
        chunk.add(nlp("y"), 0, 0)
    with pytest.raises(ValueError, match="range"):
        ChunkOffsets(1).add(nlp("y"), 0, 1)
