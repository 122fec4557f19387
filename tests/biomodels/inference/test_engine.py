"""The annotation engine: batched path equals the reference path of ner_data, exact offsets on every
bundled PubMed sample, RE candidates and scores, annotator hashes, bad input, streaming."""

from __future__ import annotations

import copy
import hashlib
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from biomodels.data.ner import NerExample, decode_entities, merge_ner_predictions, merge_word_scores, tokenize_ner
from biomodels.inference.engine import AnnotationEngine
from corpora.errors import ConfigError, InputError, ModelError
from corpora.formats.conll import read_conll
from corpora.formats.pubmed_xml import read_pubmed_xml
from corpora.formats.pubtator import read_pubtator
from corpora.preprocess.documents import preprocess_documents
from corpora.preprocess.pipeline import build_pipeline
from corpora.schema import Document, Entity, Passage, Span
from tests.helpers.annotation_models import NER_LABELS, ner_model_dir, re_model_dir, sample_vocab
from tests.helpers.paths import ROOT

SAMPLES = ROOT / "corpora" / "samples"


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the test machine is small and shared
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    vocab = sample_vocab(root / "vocab")
    return {"vocab": vocab, "ner": ner_model_dir(root / "ner", vocab), "re": re_model_dir(root / "re", vocab)}


@pytest.fixture(scope="module")
def engine(dirs) -> AnnotationEngine:
    return AnnotationEngine(dirs["ner"], dirs["re"], device="cpu")


@pytest.fixture(scope="module")
def nlp():
    return build_pipeline()


@pytest.fixture(scope="module")
def pubmed_docs(nlp) -> list[Document]:
    """Every citation of every bundled PubMed/MEDLINE file, preprocessed by scispaCy."""
    docs = []
    for path in sorted((SAMPLES / "pubmed").glob("*.xml*")):
        docs.extend(d for d in read_pubmed_xml(path) if isinstance(d, Document))
    return list(preprocess_documents(docs, nlp))


def _fresh(docs: list[Document]) -> list[Document]:
    return [copy.deepcopy(d) for d in docs]


def reference_entities(engine: AnnotationEngine, examples: list[NerExample]) -> list[list[tuple[int, int, str, float]]]:
    """Entities by the path evaluation uses: tokenize_ner features one at a time (no padding),
    merge_ner_predictions / merge_word_scores, then decode_entities."""
    tm = engine.ner.task_model
    feats = tokenize_ner(examples, tm.tokenizer, None, tm.max_length, engine.ner.stride)
    rows = []
    with torch.inference_mode():
        for f in feats:
            ids = torch.tensor([f["input_ids"]])
            rows.append(
                tm.model(
                    input_ids=ids, attention_mask=torch.ones_like(ids), token_type_ids=torch.zeros_like(ids)
                ).logits[0]
            )
    tags = merge_ner_predictions(feats, rows, examples, tm.labels, repair=True)
    scores = [
        torch.softmax(torch.from_numpy(m), -1).max(-1).values.numpy() for m in merge_word_scores(feats, rows, examples)
    ]
    return [decode_entities(ex.offsets, t, s.tolist()) for ex, t, s in zip(examples, tags, scores)]


def _examples_of(docs: list[Document]) -> list[NerExample]:
    from biomodels.data.ner import convert_documents

    return convert_documents(
        [Document(d.id, d.document_id, passages=d.passages, sentences=d.sentences, tokens=d.tokens) for d in docs]
    )[0]


def _assert_same(engine_spans, reference_spans) -> None:
    assert [(s, e, t) for s, e, t, _ in engine_spans] == [(s, e, t) for s, e, t, _ in reference_spans]
    np.testing.assert_allclose(
        [sc for *_, sc in engine_spans], [sc for *_, sc in reference_spans], rtol=1e-4, atol=1e-5
    )


# ------------------------------------------------------------------------------------------ NER


def test_offsets_exact_on_every_pubmed_sample(pubmed_docs, dirs):
    eng = AnnotationEngine(dirs["ner"], device="cpu", docs_per_chunk=50)
    docs = list(eng.annotate(_fresh(pubmed_docs)))
    assert len(docs) == len(pubmed_docs) > 600
    token_starts = [{t.start for t in d.tokens} for d in docs]
    token_ends = [{t.end for t in d.tokens} for d in docs]
    n = 0
    for d, starts, ends in zip(docs, token_starts, token_ends):
        text = d.text
        for e in d.entities:
            ((s, t),) = e.offsets
            assert text[s:t] == e.text[0]
            assert s in starts and t in ends  # on scispaCy token boundaries
            assert any(sent.start <= s and t <= sent.end for sent in d.sentences)  # inside one sentence
            assert e.annotator == eng.annotators["ner"] and 0.0 < e.score <= 1.0
            n += 1
    assert n > 1000  # the calibrated random model tags about 15% of words
    assert eng.stats.entities == n and eng.stats.documents == len(docs)


def test_engine_equals_reference_path(pubmed_docs, engine):
    docs = _fresh(pubmed_docs[:40])
    examples = _examples_of(docs)
    reference = reference_entities(engine, examples)
    annotated = list(AnnotationEngine(engine.ner.task_model.path, device="cpu").annotate(docs))
    by_doc: dict[str, list] = {}
    for ex, spans in zip(examples, reference):
        by_doc.setdefault(ex.id.rsplit(":s", 1)[0], []).extend(spans)
    for d in annotated:
        mine = sorted((e.offsets[0][0], e.offsets[0][1], e.type, e.score) for e in d.entities)
        _assert_same(mine, sorted(by_doc.get(d.id, [])))


def test_compiled_engine_freezes_its_weights_and_finds_the_same_entities(pubmed_docs, engine, dirs, monkeypatch):
    import torch._inductor.freezing as freezing

    frozen = []
    real_freeze = freezing.freeze
    monkeypatch.setattr(freezing, "freeze", lambda *a, **k: frozen.append(1) or real_freeze(*a, **k))
    compiled = AnnotationEngine(dirs["ner"], device="cpu", compile=True)
    assert compiled.ner.task_model.compiled and not engine.ner.task_model.compiled
    docs = _fresh(pubmed_docs[:40])
    got = list(compiled.annotate(_fresh(docs)))
    want = list(engine.annotate(docs))
    assert frozen, "the compiled encoder ran without inductor's freezing"
    assert sum(len(d.entities) for d in want) > 20
    for g, w in zip(got, want, strict=True):
        _assert_same(
            sorted((e.offsets[0][0], e.offsets[0][1], e.type, e.score) for e in g.entities),
            sorted((e.offsets[0][0], e.offsets[0][1], e.type, e.score) for e in w.entities),
        )
    import torch._inductor.config as inductor_config

    assert not inductor_config.freezing  # switched on around the engine's forward passes only


def test_features_are_tokenize_ner_windows(pubmed_docs, engine):
    examples = _examples_of(pubmed_docs[:40])
    long = NerExample("long", "long", [w for ex in examples for w in ex.words][:700], [(0, 1)] * 700)
    examples.append(long)
    tm = engine.ner.task_model
    reference = tokenize_ner(examples, tm.tokenizer, None, tm.max_length, engine.ner.stride)
    mine = engine.ner.features([ex.words for ex in examples])
    assert [f.input_ids for f in mine] == [f["input_ids"] for f in reference]
    for f, r in zip(mine, reference):
        a, b = r["_owned_words"]
        firsts = {}
        for pos, w in enumerate(r["_word_ids"]):
            if w is not None and a <= w < b and w not in firsts:
                firsts[w] = pos
        assert f.words.tolist() == sorted(firsts) and f.positions.tolist() == [firsts[w] for w in sorted(firsts)]
    assert sum(1 for r in reference if r["_example_index"] == len(examples) - 1) > 10  # the long one is windowed


def test_sentence_of_5000_tokens(engine, pubmed_docs):
    words = [w for ex in _examples_of(pubmed_docs[:30]) for w in ex.words][:5000]
    assert len(words) == 5000
    text = " ".join(words)
    tokens, cursor = [], 0
    for w in words:
        tokens.append(Span(cursor, cursor + len(w)))
        cursor += len(w) + 1
    doc = Document(
        "long",
        "long",
        passages=[Passage("p", "abstract", text, [[0, len(text)]])],
        sentences=[Span(0, len(text))],
        tokens=tokens,
    )
    eng = AnnotationEngine(engine.ner.task_model.path, device="cpu", batch_tokens=512)
    (out,) = list(eng.annotate([doc]))
    assert len(out.entities) > 100
    for e in out.entities:
        assert text[e.offsets[0][0] : e.offsets[0][1]] == e.text[0]
    _assert_same(
        sorted((e.offsets[0][0], e.offsets[0][1], e.type, e.score) for e in out.entities),
        reference_entities(eng, _examples_of([doc]))[0],
    )


@pytest.mark.slow
def test_trained_model_finds_diseases(tmp_path):
    """A 2-layer model trained for 150 steps on the NCBI sample through `biomodels.training.api`."""
    from biomodels.training.api import train

    config = {
        "layers": 2,
        "hidden": 64,
        "heads": 2,
        "max_positions": 128,
        "max_steps": 150,
        "batch_size": 16,
        "vocab_size": 800,
        "lower_case": True,
        "learning_rate": 5e-3,
        "save_every": None,
        "precision": "fp32",
        "progress": False,
        "device": "cpu",
    }
    train("ner", "scratch", [SAMPLES / "ncbi-disease" / "train_sample.tsv"], None, tmp_path / "m", config)
    dev = list(read_conll(SAMPLES / "ncbi-disease" / "devel_sample.tsv"))
    gold = {(d.id, e.offsets[0][0], e.offsets[0][1]) for d in dev for e in d.entities}
    eng = AnnotationEngine(tmp_path / "m", device="cpu")
    out = list(eng.annotate(copy.deepcopy(dev)))
    pred = {(d.id, e.offsets[0][0], e.offsets[0][1]) for d in out for e in d.entities}
    assert {e.type for d in out for e in d.entities} == {"Disease"}
    tp = len(gold & pred)
    assert tp and 2 * tp / (len(gold) + len(pred)) > 0.1  # learned something (random tagging scores ~0)
    for d in out:
        for e in d.entities:
            assert d.text[e.offsets[0][0] : e.offsets[0][1]] == e.text[0]
    _assert_same(
        sorted(
            (e.offsets[0][0], e.offsets[0][1], e.type, e.score) for d in out for e in d.entities if d.id == out[0].id
        ),
        reference_entities(eng, _examples_of(dev[:1]))[0],
    )


def test_annotator_names_the_weights(engine, dirs):
    for task in ("ner", "re"):
        digest = hashlib.sha256((dirs[task] / "model.safetensors").read_bytes()).hexdigest()[:12]
        name = "cdr-tiny" if task == "ner" else "cid-tiny"
        assert engine.annotators[task] == f"{task}:{name}@{digest}"


# ------------------------------------------------------------------------------------------- RE


def _independent_pairs(doc: Document, pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Ordered (arg1, arg2) entity pairs in one sentence whose types form a pair of the task."""
    found = set()
    for sent in doc.sentences:
        inside = [
            e
            for e in doc.entities
            if sent.start <= min(a for a, _ in e.offsets) < sent.end and max(b for _, b in e.offsets) <= sent.end
        ]
        for a in inside:
            for b in inside:
                if a.id != b.id and (a.type, b.type) in pairs:
                    found.add((a.id, b.id))
    return found


def test_relations_only_between_candidate_pairs(pubmed_docs, engine):
    eng = AnnotationEngine(engine.ner.task_model.path, engine.re.task_model.path, device="cpu")
    docs = list(eng.annotate(_fresh(pubmed_docs[:25])))
    n_pairs, n_rel = 0, 0
    for d in docs:
        pairs = _independent_pairs(d, {("Chemical", "Disease")})
        n_pairs += len(pairs)
        ids = {e.id for e in d.entities}
        for r in d.relations:
            assert r.arg1_id in ids and r.arg2_id in ids
            assert (r.arg1_id, r.arg2_id) in pairs
            assert r.type == "CID" and 0.5 <= r.score <= 1.0 and r.annotator == eng.annotators["re"]
            n_rel += 1
    assert eng.stats.candidates == n_pairs > 50
    assert 0 < n_rel < n_pairs  # calibrated to about half positive


def test_relation_scores_are_the_softmax_of_the_marked_input(pubmed_docs, engine):
    from biomodels.data.re_marking import mark_candidate

    tm = engine.re.task_model
    checked = 0
    for doc in engine.annotate(_fresh(pubmed_docs[:10])):
        cands = {(c.arg1.id, c.arg2.id): c for c in engine.relation_candidates(doc)}
        for rel in doc.relations:
            marked = mark_candidate(cands[(rel.arg1_id, rel.arg2_id)], "entity_markers")
            enc = tm.tokenizer(marked.text, return_tensors="pt")
            if enc["input_ids"].shape[1] > tm.max_length:
                continue  # windowed by tokenize_re: not the whole sentence
            with torch.inference_mode():
                probs = torch.softmax(tm.model(**enc).logits[0], -1)
            assert tm.tokenizer.convert_tokens_to_ids("[E1]") in enc["input_ids"][0].tolist()
            assert rel.score == pytest.approx(float(probs[tm.labels.index(rel.type)]), abs=1e-5)
            checked += 1
    assert checked > 5


def test_re_over_the_documents_own_entities(dirs, nlp):
    docs = list(
        preprocess_documents(list(read_pubtator(SAMPLES / "bc5cdr" / "CDR_train_sample.PubTator.txt"))[:10], nlp)
    )
    gold_entities = {d.id: [e.id for e in d.entities] for d in docs}
    gold_relations = {d.id: len(d.relations) for d in docs}
    expected = {d.id: _independent_pairs(d, {("Chemical", "Disease")}) for d in docs}
    eng = AnnotationEngine(None, dirs["re"], device="cpu", existing="keep")
    assert eng.annotators.keys() == {"re"}
    total = 0
    for d in eng.annotate(docs):
        assert [e.id for e in d.entities] == gold_entities[d.id]
        new = d.relations[gold_relations[d.id] :]
        assert all(r.annotator == eng.annotators["re"] for r in new)
        assert {(r.arg1_id, r.arg2_id) for r in new} <= expected[d.id]
        total += len(expected[d.id])
    assert eng.stats.candidates == total > 0
    with pytest.raises(ConfigError, match="existing='keep'"):
        AnnotationEngine(None, dirs["re"], device="cpu")


def test_re_types_the_ner_model_never_produces(dirs, tmp_path, caplog):
    gene_ner = ner_model_dir(tmp_path / "gene", dirs["vocab"], labels=["O", "B-Gene", "I-Gene"])
    with pytest.raises(ModelError, match=r"never produces.*\['Gene'\]"):
        AnnotationEngine(gene_ner, dirs["re"], device="cpu")
    # ChemProt pairs (CHEMICAL, GENE-Y) and (CHEMICAL, GENE-N): an NER model without GENE-N gets a warning
    chem_ner = ner_model_dir(
        tmp_path / "chem", dirs["vocab"], labels=["O", "B-CHEMICAL", "I-CHEMICAL", "B-GENE-Y", "I-GENE-Y"]
    )
    chemprot_re = re_model_dir(
        tmp_path / "cp", dirs["vocab"], relation_task="chemprot", labels=["false", "CPR:3", "CPR:4"]
    )
    with caplog.at_level(logging.WARNING, logger="biomodels.inference.engine"):
        eng = AnnotationEngine(chem_ner, chemprot_re, device="cpu")
    assert "never produces ['GENE-N']" in caplog.text
    assert eng.re.task.name == "chemprot"


# -------------------------------------------------------------------------------------- options


def test_existing_annotations_replaced_or_kept(dirs, nlp):
    docs = list(
        preprocess_documents(list(read_pubtator(SAMPLES / "ncbi-disease" / "NCBI_train_sample.PubTator.txt"))[:8], nlp)
    )
    gold = {d.id: copy.deepcopy(d.entities) for d in docs}
    assert sum(map(len, gold.values())) > 20
    replaced = list(AnnotationEngine(dirs["ner"], device="cpu").annotate(_fresh(docs)))
    kept = list(AnnotationEngine(dirs["ner"], device="cpu", existing="keep").annotate(_fresh(docs)))
    for r, k in zip(replaced, kept):
        assert all(e.annotator for e in r.entities)
        assert k.entities[: len(gold[k.id])] == gold[k.id]
        predicted = k.entities[len(gold[k.id]) :]
        assert [(e.offsets, e.type, e.score) for e in predicted] == [(e.offsets, e.type, e.score) for e in r.entities]
        assert len({e.id for e in k.entities}) == len(k.entities)  # no id collides with a gold id
    with pytest.raises(ConfigError, match="existing"):
        AnnotationEngine(dirs["ner"], device="cpu", existing="merge")


def test_empty_documents_pass_through(engine):
    empty = Document("e0", "e0")
    blank = Document(
        "e1",
        "e1",
        passages=[Passage("p", "title", "   \n ", [[0, 5]])],
        entities=[Entity("T1", "Disease", ["x"], [[0, 1]])],
    )
    out = list(engine.annotate([empty, blank]))
    assert [d.id for d in out] == ["e0", "e1"]
    assert all(d.entities == [] and d.relations == [] for d in out)
    assert engine.stats.empty_documents >= 2


def test_document_without_sentences(engine, pubmed_docs, dirs):
    good = copy.deepcopy(pubmed_docs[0])
    bad = copy.deepcopy(pubmed_docs[1])
    bad.sentences, bad.tokens = [], []
    before = copy.deepcopy(good)
    with pytest.raises(InputError, match=rf"record {bad.id}: document has text but no sentences"):
        list(engine.annotate([good, bad]))
    assert good == before  # nothing of the chunk was changed: no partial output
    eng = AnnotationEngine(dirs["ner"], device="cpu", preprocess=True)
    (fixed,) = list(eng.annotate([bad]))
    (expected,) = list(AnnotationEngine(dirs["ner"], device="cpu").annotate([copy.deepcopy(pubmed_docs[1])]))
    assert fixed.sentences == expected.sentences and fixed.entities == expected.entities
    assert eng.stats.preprocessed_documents == 1


@pytest.mark.parametrize(
    "missing", ["model.safetensors", "labels.json", "tokenizer.json", "biomed.json", "config.json"]
)
def test_model_dir_with_a_missing_file(dirs, tmp_path, missing):
    broken = tmp_path / "broken"
    shutil.copytree(dirs["ner"], broken)
    (broken / missing).unlink()
    with pytest.raises(ModelError) as err:
        AnnotationEngine(broken, device="cpu")
    assert missing in str(err.value) and str(broken) in str(err.value)


def test_annotate_streams(engine, pubmed_docs):
    seen = []

    def source():
        for d in _fresh(pubmed_docs[:6]):
            seen.append(d.id)
            yield d
        raise AssertionError("the engine read past what it needed")

    eng = AnnotationEngine(engine.ner.task_model.path, device="cpu", docs_per_chunk=2)
    stream = eng.annotate(source())
    first = next(stream)
    assert first.id == pubmed_docs[0].id and len(seen) == 2


def test_labels_must_be_iob2(dirs, tmp_path):
    odd = ner_model_dir(tmp_path / "odd", dirs["vocab"], labels=["O", "Disease"])
    with pytest.raises(ModelError, match="not an IOB2 tag"):
        AnnotationEngine(odd, device="cpu")


def test_predict_entities_on_word_lists(engine):
    assert engine.predict_entities([[], ["Aspirin"]])[0] == []
    words = "Familial adenomatous polyposis is caused by germline mutations of APC".split()
    (spans,) = engine.predict_entities([words])
    for first, end, etype, score in spans:
        assert 0 <= first < end <= len(words) and etype in {"Chemical", "Disease"} and 0 < score <= 1
    assert set(NER_LABELS) == set(engine.ner.labels)


def test_decode_words_is_decode_entities():
    from biomodels.data.ner import decode_entities
    from biomodels.inference.entities import decode_words

    rng = np.random.default_rng(0)
    tags_set = ["O", "B-Chemical", "I-Chemical", "B-Disease", "I-Disease"]
    for _ in range(300):
        n = int(rng.integers(0, 25))
        tags = [tags_set[i] for i in rng.integers(0, len(tags_set), n)]  # invalid I- starts included
        scores = rng.random(n).tolist()
        expected = decode_entities([(i, i + 1) for i in range(n)], tags, scores)
        got = decode_words(tags, scores)
        assert [g[:3] for g in got] == [e[:3] for e in expected]
        np.testing.assert_allclose([g[3] for g in got], [e[3] for e in expected], rtol=1e-12)


def test_relation_task_and_style_from_biomed_json(tmp_path):
    from types import SimpleNamespace

    from biomodels.inference.relations import input_style_of, relation_task_of

    def tm(**meta):
        return SimpleNamespace(meta=meta, path=tmp_path)

    assert relation_task_of(tm(relation_task="chemprot")).type_pairs == (("CHEMICAL", "GENE-Y"), ("CHEMICAL", "GENE-N"))
    assert relation_task_of(tm(relation_task="bc5cdr-cid")).type_pairs == (("Chemical", "Disease"),)
    custom = relation_task_of(tm(type_pairs=[["Drug", "Drug"]], negative_label="none"))
    assert custom.type_pairs == (("Drug", "Drug"),) and custom.negative_label == "none"
    assert relation_task_of(tm(marker_style="masked-tsv")).name == "chemprot"  # masked files record no types
    with pytest.raises(ModelError, match="neither relation_task nor type_pairs"):
        relation_task_of(tm(marker_style="entity_markers"))
    assert relation_task_of(tm(relation_task="ddi")).name == "ddi"  # every trainable task can annotate
    with pytest.raises(ModelError, match="relation_task 'no-such-task'"):
        relation_task_of(tm(relation_task="no-such-task"))
    assert (
        input_style_of(tm(marker_style="masked-tsv", marker_tokens=["BC6ENTC", "BC6ENTG", "BC6OTHER"])) == "bioelectra"
    )
    assert input_style_of(tm(marker_style="masked-tsv", marker_tokens=[])) == "blue"
    assert input_style_of(tm(marker_style="typed_markers")) == "typed_markers"
    with pytest.raises(ModelError, match="marker_style 'arrows'"):
        input_style_of(tm(marker_style="arrows"))


def test_typed_marker_re_model(dirs, tmp_path, pubmed_docs):
    typed = re_model_dir(tmp_path / "typed", dirs["vocab"], style="typed_markers")
    eng = AnnotationEngine(dirs["ner"], typed, device="cpu")
    assert eng.re.style == "typed_markers"
    docs = list(eng.annotate(_fresh(pubmed_docs[:10])))
    assert eng.stats.candidates == sum(len(_independent_pairs(d, {("Chemical", "Disease")})) for d in docs) > 0
    tok = eng.re.task_model.tokenizer
    assert tok.tokenize("[E1-CHEMICAL] aspirin [/E1-CHEMICAL]")[0] == "[E1-CHEMICAL]"
