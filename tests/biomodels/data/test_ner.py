"""NER data: Documents -> IOB2 examples -> windowed features -> merged tags -> character spans.

Checked on the bundled NCBI-disease CoNLL sample against an independent parse of the raw file.
The tokenizer is a tiny WordPiece trained here on the sample (small vocabulary, so words split into
several subwords and windows get exercised).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from biomodels.data.ner import (
    IGNORE_INDEX,
    NerExample,
    build_label_map,
    convert_documents,
    decode_entities,
    iob2_repair,
    merge_ner_predictions,
    merge_word_scores,
    ner_examples,
    tokenize_ner,
)
from corpora.errors import ConfigError, InputError
from corpora.formats.conll import read_conll
from corpora.schema import Document, Entity, Span, passages_from_texts
from tests.helpers.paths import ROOT

SAMPLE = ROOT / "corpora" / "samples" / "ncbi-disease" / "train_sample.tsv"


def _raw_sentences(path: Path) -> list[list[tuple[str, str]]]:
    """Independent parse: (word, tag) per line, blank lines between sentences."""
    sentences: list[list[tuple[str, str]]] = [[]]
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            if sentences[-1]:
                sentences.append([])
            continue
        word, tag = line.split("\t")
        sentences[-1].append((word, tag))
    return [s for s in sentences if s]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertTokenizerFast

    words = [w for s in _raw_sentences(SAMPLE) for w, _ in s]
    wp = BertWordPieceTokenizer(lowercase=True)
    wp.train_from_iterator(
        [" ".join(words)],
        vocab_size=400,
        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
        show_progress=False,
    )
    d = tmp_path_factory.mktemp("tok")
    wp.save_model(str(d))
    tok = BertTokenizerFast.from_pretrained(str(d))
    assert tok.is_fast
    return tok


@pytest.fixture(scope="module")
def examples() -> list[NerExample]:
    return ner_examples(read_conll(SAMPLE))


def _chunks(tags: list[str]) -> list[tuple[int, int, str]]:
    out, i = [], 0
    while i < len(tags):
        if tags[i].startswith("B-"):
            j = i + 1
            while j < len(tags) and tags[j] == "I-" + tags[i][2:]:
                j += 1
            out.append((i, j, tags[i][2:]))
            i = j
        else:
            i += 1
    return out


def test_examples_reproduce_the_file(examples: list[NerExample]) -> None:
    raw = _raw_sentences(SAMPLE)
    assert len(examples) == len(raw) == 800
    for ex, sent in zip(examples, raw):
        assert ex.words == [w for w, _ in sent]
        assert ex.tags == [t for _, t in sent]  # the file is valid IOB2 (no I- after O), so tags are equal


def test_gold_entity_spans_recovered_from_tags(examples: list[NerExample]) -> None:
    docs = list(read_conll(SAMPLE))
    raw = _raw_sentences(SAMPLE)
    total = 0
    for doc, ex, sent in zip(docs, examples, raw):
        text = doc.text
        spans = decode_entities(ex.offsets, ex.tags)
        # same spans as the Document's entities ...
        assert [(s, e, t) for s, e, t, _ in spans] == sorted(
            (en.offsets[0][0], en.offsets[0][1], en.type) for en in doc.entities
        )
        # ... and their text is the raw file's words of each chunk, joined by spaces
        words = [w for w, _ in sent]
        assert [text[s:e] for s, e, _, _ in spans] == [
            " ".join(words[i:j]) for i, j, _ in _chunks([t for _, t in sent])
        ]
        total += len(spans)
    assert total == sum(1 for s in raw for _, t in s if t.startswith("B-")) == 788


def test_label_map_order(examples: list[NerExample]) -> None:
    assert build_label_map(examples) == ["O", "B-Disease", "I-Disease"]
    assert build_label_map([NerExample("x", "x", ["a", "b"], [(0, 1), (2, 3)], ["B-Z", "I-A"])]) == [
        "O",
        "B-A",
        "I-A",
        "B-Z",
        "I-Z",
    ]


def _label_ids(features, examples, labels):
    """Gold 'predictions': the features' own labels (first subwords carry them)."""
    return [np.array(f["labels"]) for f in features]


@pytest.mark.parametrize(("max_length", "stride"), [(16, 4), (24, 8), (128, 32)])
def test_windows_cover_every_word_and_merge_back(examples, tokenizer, max_length: int, stride: int) -> None:
    labels = build_label_map(examples)
    label2id = {l: i for i, l in enumerate(labels)}
    subset = examples[:200]
    feats = tokenize_ner(subset, tokenizer, label2id, max_length=max_length, stride=stride)
    by_example: dict[int, list[dict]] = {}
    for f in feats:
        assert len(f["input_ids"]) <= max_length
        assert (
            len(f["input_ids"])
            == len(f["attention_mask"])
            == len(f["token_type_ids"])
            == len(f["labels"])
            == len(f["_word_ids"])
        )
        assert f["input_ids"][0] == tokenizer.cls_token_id and f["input_ids"][-1] == tokenizer.sep_token_id
        assert f["labels"][0] == IGNORE_INDEX and f["labels"][-1] == IGNORE_INDEX
        by_example.setdefault(f["_example_index"], []).append(f)
    split = 0
    for ei, ex in enumerate(subset):
        fs = by_example[ei]
        split += len(fs) > 1
        covered = set()
        owners = [0] * len(ex.words)
        for f in fs:
            wids = [w for w in f["_word_ids"] if w is not None]
            covered.update(wids)
            a, b = f["_owned_words"]
            for w in range(a, b):
                owners[w] += 1
            # first subword of each word carries the gold label, the rest -100
            seen = set()
            for pos, w in enumerate(f["_word_ids"]):
                if w is None:
                    continue
                expected = label2id[ex.tags[w]] if w not in seen else IGNORE_INDEX
                assert f["labels"][pos] == expected
                seen.add(w)
        assert covered == set(range(len(ex.words))), f"example {ex.id}: words outside every window"
        assert owners == [1] * len(ex.words)
        # consecutive windows move forward and overlap by at least one word, unless the window holds a
        # single word or the shared word plus the next new word would not fit in one window
        budget = max_length - 2
        for f1, f2 in zip(fs, fs[1:]):
            (a1, b1), (a2, b2) = f1["_window"], f2["_window"]
            assert a1 < a2 and b1 < b2
            n_sub = lambda w: f1["_word_ids"].count(w) if w in f1["_word_ids"] else f2["_word_ids"].count(w)  # noqa: E731
            assert a2 < b1 or b1 - a1 == 1 or n_sub(b1 - 1) + n_sub(b1) > budget
    if max_length == 16:
        assert split > 50  # the tiny window really splits most sentences
    # a sentence is split exactly when its subwords (counted independently) exceed the window
    for ei, ex in enumerate(subset):
        n_sub = len(tokenizer(ex.words, is_split_into_words=True, add_special_tokens=False)["input_ids"])
        assert (len(by_example[ei]) > 1) == (n_sub > max_length - 2), ex.id
    merged = merge_ner_predictions(feats, _label_ids(feats, subset, labels), subset, labels, repair=False)
    assert merged == [ex.tags for ex in subset]


def test_centre_most_window_wins(examples, tokenizer) -> None:
    labels = build_label_map(examples)
    label2id = {l: i for i, l in enumerate(labels)}
    ex = max(examples, key=lambda e: len(e.words))
    feats = tokenize_ner([ex], tokenizer, label2id, max_length=16, stride=6)
    assert len(feats) >= 3
    # feature k "predicts" a per-feature score vector, so the merged row tells which feature answered
    n_feat = len(feats)
    logits = [np.tile(np.eye(n_feat)[k], (len(f["input_ids"]), 1)) for k, f in enumerate(feats)]
    chosen = merge_word_scores(feats, logits, [ex])[0].argmax(-1)
    # independent: per word, among features containing it, the one with the most subwords between it
    # and the nearer window edge (specials excluded); ties to the earlier feature
    for w in range(len(ex.words)):
        best, best_k = -1, None
        for k, f in enumerate(feats):
            positions = [p for p, x in enumerate(f["_word_ids"]) if x == w]
            if not positions:
                continue
            text_pos = [p for p, x in enumerate(f["_word_ids"]) if x is not None]
            left = positions[0] - text_pos[0]
            right = text_pos[-1] - positions[-1]
            if min(left, right) > best:
                best, best_k = min(left, right), k
        assert chosen[w] == best_k, f"word {w}"


def test_merge_from_logits_and_padded_arrays(examples, tokenizer) -> None:
    labels = build_label_map(examples)
    label2id = {l: i for i, l in enumerate(labels)}
    subset = examples[:30]
    feats = tokenize_ner(subset, tokenizer, label2id, max_length=20, stride=4)
    seq = max(len(f["input_ids"]) for f in feats)
    logits = np.full((len(feats), seq, len(labels)), -5.0, dtype=np.float32)
    for k, f in enumerate(feats):
        for p, lab in enumerate(f["labels"]):
            if lab != IGNORE_INDEX:
                logits[k, p, lab] = 5.0
    assert merge_ner_predictions(feats, logits, subset, labels) == [ex.tags for ex in subset]
    torch = pytest.importorskip("torch")
    assert merge_ner_predictions(feats, torch.from_numpy(logits).to(torch.bfloat16), subset, labels) == [
        ex.tags for ex in subset
    ]


def test_inference_features_without_labels_and_dropped_words(tokenizer) -> None:
    # a zero-width space disappears in the tokenizer; it must still get a subword ([UNK]) to carry a tag
    ex = NerExample("z", "z", ["colon", "\u200b", "cancer"], [(0, 5), (6, 7), (8, 14)], None)
    feats = tokenize_ner([ex], tokenizer, None, max_length=16, stride=2)
    assert len(feats) == 1 and "labels" not in feats[0]
    pos = feats[0]["_word_ids"].index(1)
    assert feats[0]["input_ids"][pos] == tokenizer.unk_token_id
    preds = [np.array([0] * len(feats[0]["input_ids"]))]
    assert merge_ner_predictions(feats, preds, [ex], ["O"]) == [["O", "O", "O"]]


def test_stride_must_fit(tokenizer, examples) -> None:
    with pytest.raises(ConfigError):
        tokenize_ner(examples[:1], tokenizer, {"O": 0, "B-Disease": 1, "I-Disease": 2}, max_length=10, stride=8)


def test_iob2_repair_and_decode() -> None:
    assert iob2_repair(["I-A", "I-A", "O", "I-B", "B-A", "I-B", "I-B"]) == [
        "B-A",
        "I-A",
        "O",
        "B-B",
        "B-A",
        "B-B",
        "I-B",
    ]
    offsets = [(0, 4), (5, 9), (10, 12), (13, 20)]
    # invalid start repaired to B-: both entities kept; scores averaged over the entity's words
    spans = decode_entities(offsets, ["I-Dis", "I-Dis", "O", "B-Chem"], [0.5, 0.7, 0.9, 0.8])
    assert spans == [(0, 9, "Dis", pytest.approx(0.6)), (13, 20, "Chem", pytest.approx(0.8))]
    assert decode_entities(offsets, ["O"] * 4) == []


# ----------------------------------------------------------------- conversion rules on a hand-built doc


def _doc(text: str, entities: list[Entity]) -> Document:
    """One passage; tokens = whitespace-separated words; sentences end after each '. '."""
    doc = Document(id="d1", document_id="d1", passages=passages_from_texts([("abstract", text)]), entities=entities)
    pos = 0
    for word in text.split(" "):
        doc.tokens.append(Span(pos, pos + len(word)))
        pos += len(word) + 1
    start = 0
    for i, ch in enumerate(text):
        if ch == "." and (i + 1 == len(text) or text[i + 1] == " "):
            doc.sentences.append(Span(start, i + 1))
            start = i + 2
    return doc


def test_conversion_rules() -> None:
    text = "Ovarian and breast cancer risk rises . BRCA1-linked tumours are common ."

    def at(sub: str) -> tuple[int, int]:
        i = text.index(sub)
        return i, i + len(sub)

    def ent(i: str, t: str, *offs: tuple[int, int]) -> Entity:
        return Entity(i, t, [text[s:e] for s, e in offs], [list(o) for o in offs])

    risk_to_br = (at("risk")[0], at("BRCA1")[0] + 2)
    ents = [
        ent("T1", "Disease", at("Ovarian"), at("cancer")),  # discontinuous "Ovarian ... cancer"
        ent("T2", "Disease", at("breast cancer")),
        ent("T3", "Gene", at("BRCA1")),  # inside the token "BRCA1-linked": snapped outwards
        ent("T4", "Disease", at("tumours")),
        ent("T5", "Disease", at("tumours")),  # exact duplicate of T4
        ent("T6", "Disease", risk_to_br),  # "risk rises . BR": crosses the sentence end
        ent("T7", "Gene", at("BRCA1-linked tumours")),  # longest; overlaps T3, T4, T5
    ]
    assert ents[5].text == ["risk rises . BR"]
    doc = _doc(text, ents)
    assert [text[s.start : s.end] for s in doc.sentences] == [
        "Ovarian and breast cancer risk rises .",
        "BRCA1-linked tumours are common .",
    ]
    exs, stats = convert_documents([doc])
    assert exs[0].tags == ["B-Disease", "O", "B-Disease", "I-Disease", "O", "O", "O"]  # T1 first fragment, T2
    assert exs[1].tags == ["B-Gene", "I-Gene", "O", "O", "O"]  # T7 kept (2 tokens) over T3 and T4 (1 token)
    assert (stats.entities, stats.discontinuous, stats.crossing_sentence, stats.snapped) == (7, 1, 1, 1)
    assert stats.overlap_dropped == 3 and stats.duplicates == 0  # T3, T4, T5 overlap T7
    outer, stats2 = convert_documents([doc], discontinuous="outer")
    # outer span of T1 is "Ovarian and breast cancer" (4 tokens) and wins over T2
    assert outer[0].tags == ["B-Disease", "I-Disease", "I-Disease", "I-Disease", "O", "O", "O"]
    assert stats2.overlap_dropped == 4
    # without T7, T4 and T5 are duplicates and T3 is snapped
    exs3, stats3 = convert_documents([_doc(text, ents[2:5])])
    assert exs3[1].tags == ["B-Gene", "B-Disease", "O", "O", "O"]
    assert (stats3.duplicates, stats3.overlap_dropped, stats3.snapped) == (1, 0, 1)
    spans = decode_entities(exs3[1].offsets, exs3[1].tags)
    assert [(text[s:e], t) for s, e, t, _ in spans] == [("BRCA1-linked", "Gene"), ("tumours", "Disease")]


def test_documents_without_tokens_are_refused() -> None:
    doc = Document(id="d", document_id="d", passages=passages_from_texts([("abstract", "No tokens here.")]))
    with pytest.raises(InputError, match="no tokens"):
        ner_examples([doc])


# ------------------------------------------------------------ on scispaCy preprocessing (corpora)


def test_ner_on_preprocessed_chemprot() -> None:
    from corpora.formats.chemprot import read_chemprot
    from corpora.preprocess import build_pipeline, preprocess_documents

    path = SAMPLE.parent.parent / "chemprot" / "chemprot_sample_abstracts.tsv"
    docs = list(preprocess_documents(list(read_chemprot(path))[:15], build_pipeline()))
    examples, stats = convert_documents(docs)
    assert sum(len(ex.words) for ex in examples) == sum(len(d.tokens) for d in docs)
    # independent count of entities whose boundaries fall inside a token, and of those crossing a sentence end
    n_entities = snapped = crossing = 0
    for d in docs:
        starts = {t.start for t in d.tokens}
        ends = {t.end for t in d.tokens}
        for ent in d.entities:
            n_entities += 1
            s, e = ent.offsets[0]
            sent = next(x for x in d.sentences if x.start <= s < x.end)
            if e > sent.end:
                crossing += 1
            elif s not in starts or e not in ends:
                snapped += 1
    assert (stats.entities, stats.snapped, stats.crossing_sentence, stats.no_token) == (
        n_entities,
        snapped,
        crossing,
        0,
    )
    decoded = [(ex, span) for ex in examples for span in decode_entities(ex.offsets, ex.tags)]
    assert len(decoded) == n_entities - crossing - stats.overlap_dropped - stats.duplicates
    by_doc = {d.id: d for d in docs}
    for ex, (s, e, etype, _) in decoded:
        d = by_doc[ex.document_id]
        # each decoded span is the token cover of some entity of that type
        assert any(
            en.type == etype
            and s <= en.offsets[0][0]
            and en.offsets[0][1] <= e
            and min(t.start for t in d.tokens if t.end > en.offsets[0][0]) == s
            and max(t.end for t in d.tokens if t.start < en.offsets[0][1]) == e
            for en in d.entities
        )
