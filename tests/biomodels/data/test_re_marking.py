"""Argument marking styles on the ChemProt sample: markers, masks and the map back to document offsets."""

from __future__ import annotations

import re

import pytest

from biomodels.data.re_candidates import CHEMPROT_TASK, generate_candidates
from biomodels.data.re_marking import MarkedExample, mark_candidate
from corpora.errors import ConfigError
from corpora.schema import Document


def _check_char_map(m: MarkedExample, doc_text: str) -> None:
    assert m.char_map is not None and len(m.char_map) == len(m.text)
    for i, src in enumerate(m.char_map):
        if src >= 0:
            assert m.text[i] == doc_text[src]


def test_marking_styles(chemprot_docs: list[Document]) -> None:
    cands, _ = generate_candidates(chemprot_docs, CHEMPROT_TASK)
    texts = {d.id: d.text for d in chemprot_docs}
    n_overlap = 0
    for c in cands:
        a1 = texts[c.document_id][c.arg1.start : c.arg1.end]
        a2 = texts[c.document_id][c.arg2.start : c.arg2.end]
        overlap = c.arg1.start < c.arg2.end and c.arg2.start < c.arg1.end
        n_overlap += overlap
        m = mark_candidate(c, "entity_markers")
        _check_char_map(m, texts[c.document_id])
        # between its markers each argument's text (nested arguments: with the other's markers inside)
        strip = lambda x: re.sub(r"\[/?E[12]\] | \[/E[12]\]", "", x)  # noqa: E731
        assert (
            strip(m.text[m.arg1_inner[0] : m.arg1_inner[1]]) == a1
            and strip(m.text[m.arg2_inner[0] : m.arg2_inner[1]]) == a2
        )
        if not overlap:
            assert m.text[m.arg1_inner[0] : m.arg1_inner[1]] == a1 and m.text[m.arg2_inner[0] : m.arg2_inner[1]] == a2
        assert m.text[m.arg1_span[0] :].startswith("[E1] ") and m.text[: m.arg1_span[1]].endswith(" [/E1]")
        assert m.text[m.arg2_span[0] :].startswith("[E2] ") and m.text[: m.arg2_span[1]].endswith(" [/E2]")
        # removing the markers gives back the sentence
        assert strip(m.text) == c.sentence
        t = mark_candidate(c, "typed_markers")
        assert t.text[t.arg2_span[0] :].startswith("[E2-GENE] ") and t.text[t.arg1_span[0] :].startswith(
            "[E1-CHEMICAL] "
        )
        b = mark_candidate(c, "blue")
        _check_char_map(b, texts[c.document_id])
        if overlap:
            assert b.arg1_span == b.arg2_span and b.text[b.arg1_span[0] : b.arg1_span[1]] == "@CHEM-GENE$"
        else:
            assert (
                b.text[b.arg1_span[0] : b.arg1_span[1]] == "@CHEMICAL$"
                and b.text[b.arg2_span[0] : b.arg2_span[1]] == "@GENE$"
            )
            # putting the mentions back gives the sentence
            first, second = sorted([(b.arg1_span, a1), (b.arg2_span, a2)])
            restored = (
                b.text[: first[0][0]]
                + first[1]
                + b.text[first[0][1] : second[0][0]]
                + second[1]
                + b.text[second[0][1] :]
            )
            assert restored == c.sentence
        e = mark_candidate(c, "bioelectra")
        _check_char_map(e, texts[c.document_id])
        assert e.text.count("BC6ENTC") == 1 and (e.text.count("BC6ENTG") == (0 if overlap else 1))
        free_others = [o for o in c.others if not any(o.start < x.end and x.start < o.end for x in (c.arg1, c.arg2))]
        assert 0 < e.text.count("BC6OTHER") <= len(free_others) or not free_others
    assert n_overlap > 0  # the sample has overlapping chemical/gene mentions (BLUE's @CHEM-GENE$ case)
    with pytest.raises(ConfigError):
        mark_candidate(cands[0], "nope")
