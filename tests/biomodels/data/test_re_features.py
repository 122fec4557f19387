"""RE features: labels, windows that keep both arguments, candidates that cannot fit."""

from __future__ import annotations

import pytest

from biomodels.data.re_candidates import CHEMPROT_TASK, generate_candidates
from biomodels.data.re_features import missing_candidates, tokenize_re
from biomodels.data.re_marking import mark_candidate
from corpora.errors import ConfigError
from corpora.schema import Document
from tests.helpers.re_samples import CPR


def test_tokenize_re_labels_and_windows(chemprot_docs: list[Document], tokenizer) -> None:
    cands, _ = generate_candidates(chemprot_docs, CHEMPROT_TASK)
    label2id = {l: i for i, l in enumerate(("false",) + CPR)}
    e1, e2 = (tokenizer.convert_tokens_to_ids(t) for t in ("[E1]", "[E2]"))
    # roomy window: every candidate fits, markers are single tokens at the recorded positions
    feats = tokenize_re(cands, tokenizer, label2id, max_length=512)
    assert [f["_candidate_index"] for f in feats] == list(range(len(cands)))
    for f, c in zip(feats, cands):
        assert f["labels"] == label2id[c.label]
        assert f["input_ids"][f["_arg1_token_index"]] == e1 and f["input_ids"][f["_arg2_token_index"]] == e2
    # tight window: both arguments (markers included) stay inside; a candidate is missing only when
    # its marked arguments alone need more subwords than the window holds
    max_length = 32
    feats = tokenize_re(cands, tokenizer, label2id, max_length=max_length)
    by_index = {f["_candidate_index"]: f for f in feats}
    windowed = 0
    for i, c in enumerate(cands):
        m = mark_candidate(c, "entity_markers")
        enc = tokenizer(m.text, add_special_tokens=False, return_offsets_mapping=True)
        offs = enc["offset_mapping"]
        lo = min(j for j, (s, e) in enumerate(offs) if e > min(m.arg1_span[0], m.arg2_span[0]))
        hi = max(j for j, (s, e) in enumerate(offs) if s < max(m.arg1_span[1], m.arg2_span[1]))
        if hi - lo + 1 > max_length - 2:
            assert i not in by_index
            continue
        f = by_index[i]
        assert len(f["input_ids"]) <= max_length
        windowed += len(enc["input_ids"]) > max_length - 2
        ws, we = f["_char_window"]
        assert ws <= min(m.arg1_span[0], m.arg2_span[0]) and we >= max(m.arg1_span[1], m.arg2_span[1])
        inner = [o for o in f["_offset_mapping"] if o is not None]
        assert m.text[inner[0][0] : inner[-1][1]].count("[E1]") == 1
        assert f["input_ids"][f["_arg1_token_index"]] == e1 and f["input_ids"][f["_arg2_token_index"]] == e2
    assert windowed > 100
    assert missing_candidates(feats, len(cands)) == [i for i in range(len(cands)) if i not in by_index]


def test_tokenize_re_rejects_unknown_label(chemprot_docs, tokenizer) -> None:
    cands, _ = generate_candidates(chemprot_docs, CHEMPROT_TASK)
    with pytest.raises(ConfigError, match="label"):
        tokenize_re(cands[:5], tokenizer, {"CPR:3": 0}, max_length=128)


# ---------------------------------------------------------------------------------------- BC5CDR CID
