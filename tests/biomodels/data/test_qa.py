"""SQuAD-style QA data built here from a bundled ChemProt abstract: reading, windows, targets and the
way back from (gold) logits to the exact answer text."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from biomodels.data.qa import postprocess_qa, read_squad, tokenize_qa
from biomodels.training.metrics import squad_metrics
from corpora.errors import ConfigError, MalformedInputError
from tests.helpers.paths import ROOT

ABSTRACTS = ROOT / "corpora" / "samples" / "chemprot" / "chemprot_sample_abstracts.tsv"
PMID = "10471277"

# (question, answer text chosen from the abstract); answers near the end fall in later windows
QUESTIONS = [
    ("What kind of agonist is salmeterol?", "long-acting beta2-adrenergic receptor (beta 2AR) agonist"),
    ("What is salmeterol used to treat?", "asthma"),
    ("What was the photoaffinity label called?", "[(125)I]iodoazidosalmeterol"),
    ("Which cells were stably transfected?", "HEK 293 cells"),
    ("What blocked labeling?", "10 microM (-)-alprenolol"),
]


def _context() -> str:
    for line in ABSTRACTS.read_text(encoding="utf-8").splitlines():
        pmid, title, abstract = line.split("\t")
        if pmid == PMID:
            return abstract
    raise AssertionError("sample abstract missing")


def _squad_json(tmp_path: Path) -> Path:
    context = _context()
    qas = []
    for i, (q, a) in enumerate(QUESTIONS):
        start = context.find(a)
        assert start >= 0 and context[start : start + len(a)] == a
        qas.append({"id": f"q{i}", "question": q, "answers": [{"text": a, "answer_start": start}]})
    path = tmp_path / "squad.json"
    path.write_text(
        json.dumps({"version": "1.1", "data": [{"title": PMID, "paragraphs": [{"context": context, "qas": qas}]}]}),
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertTokenizerFast

    wp = BertWordPieceTokenizer(lowercase=True)
    wp.train_from_iterator(
        ABSTRACTS.read_text(encoding="utf-8").splitlines(),
        vocab_size=500,
        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
        show_progress=False,
    )
    d = tmp_path_factory.mktemp("tok")
    wp.save_model(str(d))
    return BertTokenizerFast.from_pretrained(str(d))


def test_read_squad(tmp_path: Path) -> None:
    examples = read_squad(_squad_json(tmp_path))
    assert [e.id for e in examples] == [f"q{i}" for i in range(len(QUESTIONS))]
    context = _context()
    for e, (q, a) in zip(examples, QUESTIONS):
        assert e.question == q and e.context == context and e.title == PMID
        assert e.answers == [{"text": a, "answer_start": context.find(a)}]


def _gold_logits(features):
    starts, ends = [], []
    for f in features:
        s = np.full(len(f["input_ids"]), -10.0)
        e = np.full(len(f["input_ids"]), -10.0)
        s[f["start_positions"]] = 10.0
        e[f["end_positions"]] = 10.0
        starts.append(s)
        ends.append(e)
    return starts, ends


@pytest.mark.parametrize(("max_length", "stride"), [(64, 24), (48, 24), (384, 128)])
def test_windows_targets_and_gold_logits_round_trip(tmp_path: Path, tokenizer, max_length: int, stride: int) -> None:
    examples = read_squad(_squad_json(tmp_path))
    feats = tokenize_qa(examples, tokenizer, max_length=max_length, doc_stride=stride)
    context = examples[0].context
    later_window_answers = 0
    for ei, ex in enumerate(examples):
        fs = [f for f in feats if f["_example_index"] == ei]
        covered = set()
        inside = 0
        for wi, f in enumerate(fs):
            assert len(f["input_ids"]) <= max_length
            assert f["input_ids"][0] == tokenizer.cls_token_id
            ctx = [o for o in f["_offset_mapping"] if o is not None]
            for a, b in ctx:
                covered.update(range(a, b))
            s, e = f["start_positions"], f["end_positions"]
            a_start = ex.answers[0]["answer_start"]
            a_end = a_start + len(ex.answers[0]["text"])
            if ctx[0][0] <= a_start and ctx[-1][1] >= a_end:
                # answer inside this window: the target selects exactly the answer text
                off = f["_offset_mapping"]
                assert context[off[s][0] : off[e][1]] == ex.answers[0]["text"]
                inside += 1
                later_window_answers += wi > 0 and inside == 1
            else:
                assert s == e == 0  # the [CLS] position
        # every non-space context character is in some window (the context is never truncated)
        assert {i for i, c in enumerate(context) if not c.isspace()} <= covered
        # an answer no longer than the overlap is wholly inside at least one window
        assert len(tokenizer(ex.answers[0]["text"], add_special_tokens=False)["input_ids"]) <= stride
        assert inside >= 1
        # consecutive windows overlap
        for f1, f2 in zip(fs, fs[1:]):
            c1 = [o for o in f1["_offset_mapping"] if o is not None]
            c2 = [o for o in f2["_offset_mapping"] if o is not None]
            assert c2[0][0] < c1[-1][1]
        # window count: room = max_length - question - 3 specials; each further window advances by
        # room - stride context subwords
        n_ctx = len(tokenizer(context, add_special_tokens=False)["input_ids"])
        room = max_length - len(tokenizer(ex.question, add_special_tokens=False)["input_ids"]) - 3
        assert len(fs) == (1 if n_ctx <= room else 1 + math.ceil((n_ctx - room) / (room - stride)))
    assert later_window_answers >= (3 if max_length < 100 else 1)  # answers first seen in a later window
    starts, ends = _gold_logits(feats)
    preds = postprocess_qa(feats, starts, ends, examples)
    assert preds == {ex.id: ex.answers[0]["text"] for ex in examples}
    m = squad_metrics(preds, {ex.id: [a["text"] for a in ex.answers] for ex in examples})
    assert m["exact_match"] == 100.0 and m["f1"] == 100.0
    # padded 2-D arrays work the same way
    width = max(len(s) for s in starts)
    pad = lambda rows: np.stack([np.pad(r, (0, width - len(r)), constant_values=50.0) for r in rows])  # noqa: E731
    assert postprocess_qa(feats, pad(starts), pad(ends), examples) == preds


def test_postprocess_respects_max_answer_length_and_context(tmp_path: Path, tokenizer) -> None:
    examples = read_squad(_squad_json(tmp_path))[:1]
    feats = tokenize_qa(examples, tokenizer, max_length=384, doc_stride=128)[:1]  # the first window only
    f = feats[0]
    n = len(f["input_ids"])
    ctx = [i for i, o in enumerate(f["_offset_mapping"]) if o is not None]
    s, e = np.zeros(n), np.zeros(n)
    # the question tokens get the highest logits but are not context: ignored
    s[1], e[2] = 100.0, 100.0
    # a long span (41 subwords) scores 40, a short one 20; mixed pairs are reversed (start 10 > end 7)
    # or too long (start 5 to end 50: 46 subwords)
    s[ctx[10]], e[ctx[50]] = 20.0, 20.0
    s[ctx[5]], e[ctx[7]] = 10.0, 10.0
    got = postprocess_qa(feats, [s], [e], examples, max_answer_length=30)
    off = f["_offset_mapping"]
    assert got[examples[0].id] == examples[0].context[off[ctx[5]][0] : off[ctx[7]][1]]
    got_long = postprocess_qa(feats, [s], [e], examples, max_answer_length=41)
    assert got_long[examples[0].id] == examples[0].context[off[ctx[10]][0] : off[ctx[50]][1]]


def test_question_too_long_for_window(tmp_path: Path, tokenizer) -> None:
    examples = read_squad(_squad_json(tmp_path))
    with pytest.raises(ConfigError, match="q0"):
        tokenize_qa(examples, tokenizer, max_length=24, doc_stride=16)


def _write(tmp_path: Path, obj) -> Path:
    p = tmp_path / "bad.json"
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj), encoding="utf-8")
    return p


def _doc(qas, context="Salmeterol treats asthma."):
    return {"data": [{"title": "t", "paragraphs": [{"context": context, "qas": qas}]}]}


@pytest.mark.parametrize(
    ("content", "match", "record"),
    [
        (
            _doc([{"id": "x1", "question": "What?", "answers": [{"text": "asthma", "answer_start": 3}]}]),
            "not at answer_start 3",
            "x1",
        ),
        (_doc([{"id": "x2", "question": "What?", "answers": [{"text": "asthma"}]}]), "answer_start", "x2"),
        (_doc([{"id": "x3", "answers": []}]), "question", "x3"),
        (
            _doc([{"id": "x4", "question": "Q?", "answers": []}, {"id": "x4", "question": "Q?", "answers": []}]),
            "repeats",
            "x4",
        ),
        ({"version": "1.1"}, '"data"', None),
    ],
)
def test_read_squad_errors_name_file_and_question(tmp_path: Path, content, match: str, record) -> None:
    p = _write(tmp_path, content)
    with pytest.raises(MalformedInputError, match=match) as info:
        read_squad(p)
    assert info.value.path == str(p) and info.value.record == record
    assert str(p) in str(info.value)


def test_read_squad_invalid_json_names_line(tmp_path: Path) -> None:
    p = _write(tmp_path, '{"data": [\n{"title": "t",\n "paragraphs": [}\n]}')
    with pytest.raises(MalformedInputError) as info:
        read_squad(p)
    assert info.value.line == 3
