"""The spaCy components: same output as the engine, entry points in a fresh process, config files,
saving with the pipeline, serializable docs, n_process=2 after scispaCy's components."""

from __future__ import annotations

import copy
import json
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import spacy
import torch
from spacy.lang.en import English
from spacy.tokens import DocBin

from biomodels.inference.engine import AnnotationEngine
from biomodels.spacy_components import MODEL_SUBDIR
from corpora.errors import ConfigError, ModelError
from corpora.formats.pubmed_xml import read_pubmed_xml
from corpora.preprocess.documents import preprocess_documents
from corpora.preprocess.pipeline import build_pipeline
from corpora.schema import Document
from tests.helpers.annotation_models import ner_model_dir, re_model_dir, sample_vocab
from tests.helpers.paths import ROOT

SAMPLES = ROOT / "corpora" / "samples"
# scispaCy's abbreviation detector runs an empty matcher on every doc (W036); corpora.preprocess.pipeline hides it too
pytestmark = pytest.mark.filterwarnings(r"ignore:\[W036\]")


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    vocab = sample_vocab(root / "vocab")
    return {"ner": ner_model_dir(root / "ner", vocab), "re": re_model_dir(root / "re", vocab)}


@pytest.fixture(scope="module")
def pubmed_docs() -> list[Document]:
    docs = [d for d in read_pubmed_xml(SAMPLES / "pubmed" / "medline16n0902.xml.gz") if isinstance(d, Document)][:30]
    docs += [
        d
        for p in sorted((SAMPLES / "pubmed").glob("pubmed*.xml"))
        for d in read_pubmed_xml(p)
        if isinstance(d, Document)
    ]
    return docs


def full_pipeline(dirs, **ner_config):
    nlp = build_pipeline()  # scispaCy tokenizer, sentence segmenter, abbreviation detector
    nlp.add_pipe("biomegatron_ner", config={"model": str(dirs["ner"]), **ner_config})
    nlp.add_pipe("biomegatron_re", config={"model": str(dirs["re"])})
    return nlp


def summary(doc, shift: int = 0) -> dict:
    """What the components wrote, as plain values with offsets shifted by `shift`."""
    group = doc.spans["biomegatron_ner"]
    return {
        "spans": [(s.start_char + shift, s.end_char + shift, s.label_) for s in group],
        "scores": list(group.attrs["scores"]),
        "ents": [(e.start_char + shift, e.end_char + shift, e.label_) for e in doc.ents],
        "relations": sorted(
            (
                r["head"][0] + shift,
                r["head"][1] + shift,
                r["head"][2],
                r["tail"][0] + shift,
                r["tail"][1] + shift,
                r["tail"][2],
                r["label"],
                r["score"],
            )
            for r in doc._.biomegatron_relations
        ),
    }


def _close(a: list[float], b: list[float]) -> None:
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def _same(a: dict, b: dict) -> None:
    assert a["spans"] == b["spans"] and a["ents"] == b["ents"]
    _close(a["scores"], b["scores"])
    assert [r[:7] for r in a["relations"]] == [r[:7] for r in b["relations"]]
    _close([r[7] for r in a["relations"]], [r[7] for r in b["relations"]])


def test_component_output_equals_engine_output(dirs, pubmed_docs):
    nlp = full_pipeline(dirs, overwrite_ents=True)
    engine = AnnotationEngine(dirs["ner"], dirs["re"], device="cpu")
    docs = list(engine.annotate(preprocess_documents(copy.deepcopy(pubmed_docs), build_pipeline())))
    n_ents = n_rels = 0
    for d in docs:
        passages = sorted(d.passages, key=lambda p: p.offsets[0][0])
        spacy_out = [summary(doc, p.offsets[0][0]) for doc, p in zip(nlp.pipe(p.text for p in passages), passages)]
        mine = {
            "spans": [s for o in spacy_out for s in o["spans"]],
            "scores": [s for o in spacy_out for s in o["scores"]],
            "relations": sorted(r for o in spacy_out for r in o["relations"]),
        }
        by_id = {e.id: e for e in d.entities}
        engine_out = {
            "spans": [(e.offsets[0][0], e.offsets[0][1], e.type) for e in d.entities],
            "scores": [e.score for e in d.entities],
            "relations": sorted(
                (
                    *by_id[r.arg1_id].offsets[0],
                    by_id[r.arg1_id].type,
                    *by_id[r.arg2_id].offsets[0],
                    by_id[r.arg2_id].type,
                    r.type,
                    r.score,
                )
                for r in d.relations
            ),
        }
        mine["ents"] = engine_out["ents"] = mine["spans"]
        _same(mine, engine_out)
        text = d.text
        assert all(text[e.offsets[0][0] : e.offsets[0][1]] == e.text[0] for e in d.entities)
        n_ents += len(d.entities)
        n_rels += len(d.relations)
    assert n_ents > 200 and n_rels > 20


def test_annotator_and_scores_recorded(dirs):
    nlp = full_pipeline(dirs)
    doc = nlp("Cisplatin-induced nephrotoxicity was reduced by magnesium in rats with renal failure and anemia.")
    group = doc.spans["biomegatron_ner"]
    assert group.attrs["annotator"].startswith("ner:cdr-tiny@") and len(group.attrs["scores"]) == len(group)
    for rel in doc._.biomegatron_relations:
        assert set(rel) == {"head", "tail", "label", "score", "annotator"} and rel["annotator"].startswith(
            "re:cid-tiny@"
        )
        assert doc.text[rel["head"][0] : rel["head"][1]] in {e.text for e in doc.ents}


def test_compile_setting_reaches_both_engines(dirs):
    nlp = English()
    nlp.add_pipe("biomegatron_ner", config={"model": str(dirs["ner"]), "compile": True})
    nlp.add_pipe("biomegatron_re", config={"model": str(dirs["re"]), "compile": True})
    assert nlp.get_pipe("biomegatron_ner").engine.ner.task_model.compiled
    assert nlp.get_pipe("biomegatron_re").engine.re.task_model.compiled
    plain = English()
    plain.add_pipe("biomegatron_ner", config={"model": str(dirs["ner"])})
    assert not plain.get_pipe("biomegatron_ner").engine.ner.task_model.compiled


def test_overwrite_ents_or_keep_existing(dirs):
    text = (
        "Familial adenomatous polyposis and colorectal cancer follow germline mutations of APC "
        "in patients with aspirin use ."
    )
    plain = spacy.blank("en")
    plain.add_pipe("biomegatron_ner", config={"model": str(dirs["ner"]), "overwrite_ents": True})
    plain_doc = plain(text)
    predicted = [(s.start, s.end, s.label_) for s in plain_doc.spans["biomegatron_ner"]]
    assert len(predicted) >= 2

    keep = spacy.blank("en")
    keep.add_pipe("biomegatron_ner", config={"model": str(dirs["ner"])})  # overwrite_ents defaults to False
    doc = keep.make_doc(text)
    start, end, _ = predicted[0]
    doc.ents = [spacy.tokens.Span(doc, start, end + 1 if end < len(doc) else end, label="GOLD")]
    existing = [(e.start, e.end, e.label_) for e in doc.ents]
    doc = keep.get_pipe("biomegatron_ner")(doc)
    ents = [(e.start, e.end, e.label_) for e in doc.ents]
    assert existing[0] in ents  # kept
    assert all(
        p in ents for p in predicted if p[1] <= existing[0][0] or p[0] >= existing[0][1]
    )  # added when not overlapping
    assert predicted[0] not in ents and [(s.start, s.end, s.label_) for s in doc.spans["biomegatron_ner"]] == predicted


def test_doc_without_sentence_boundaries_is_one_sentence(dirs):
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("biomegatron_ner", config={"model": str(dirs["ner"])})
    text = "Germline  mutations of the APC gene\ncause familial adenomatous polyposis and colorectal cancer ."
    doc = nlp(text)
    words = [t.text for t in nlp.make_doc(text) if not t.is_space]
    (expected,) = ner.engine.predict_entities([words])
    assert [s.label_ for s in doc.spans["biomegatron_ner"]] == [label for _, _, label, _ in expected]
    assert all(not t.is_space for s in doc.ents for t in (s[0], s[-1]))


def test_fresh_process_entry_points_and_config_file(dirs, tmp_path, pubmed_docs):
    """`add_pipe` by name, a config file, and `spacy.load` of a saved pipeline whose model folders are
    gone, in a process that never imports biomodels itself."""
    text = max((p.text for d in pubmed_docs[:5] for p in d.passages), key=len)
    (tmp_path / "text.txt").write_text(text, encoding="utf-8")
    script = textwrap.dedent(
        f"""
        import json, sys
        import spacy
        from spacy.util import load_config, load_model_from_config
        assert "biomodels" not in sys.modules
        text = open("text.txt", encoding="utf-8").read()
        nlp = spacy.blank("en")
        nlp.add_pipe("sentencizer")
        nlp.add_pipe("biomegatron_ner", config={{"model": {str(dirs["ner"])!r}}})
        nlp.add_pipe("biomegatron_re", config={{"model": {str(dirs["re"])!r}}})
        doc = nlp(text)
        by_name = [[s.start_char, s.end_char, s.label_] for s in doc.spans["biomegatron_ner"]]
        config = load_config({str(tmp_path / "pipeline.cfg")!r})
        doc2 = load_model_from_config(config, auto_fill=True)(text)
        by_config = [[s.start_char, s.end_char, s.label_] for s in doc2.spans["biomegatron_ner"]]
        doc3 = spacy.load("saved")(text)  # a pipeline saved by nlp.to_disk, its model folders gone
        by_load = [[s.start_char, s.end_char, s.label_] for s in doc3.spans["biomegatron_ner"]]
        print(json.dumps({{"by_name": by_name, "by_config": by_config, "by_load": by_load,
                          "relations": doc._.biomegatron_relations, "relations_config": doc2._.biomegatron_relations,
                          "relations_load": doc3._.biomegatron_relations}}))
        """
    )
    copies = tmp_path / "copies"
    shutil.copytree(dirs["ner"], copies / "ner")
    shutil.copytree(dirs["re"], copies / "re")
    saving = spacy.blank("en")
    saving.add_pipe("sentencizer")
    saving.add_pipe("biomegatron_ner", config={"model": str(copies / "ner")})
    saving.add_pipe("biomegatron_re", config={"model": str(copies / "re")})
    saving.to_disk(tmp_path / "saved")
    shutil.rmtree(copies)
    (tmp_path / "pipeline.cfg").write_text(
        textwrap.dedent(
            f"""
        [nlp]
        lang = "en"
        pipeline = ["sentencizer", "biomegatron_ner", "biomegatron_re"]

        [components]

        [components.sentencizer]
        factory = "sentencizer"

        [components.biomegatron_ner]
        factory = "biomegatron_ner"
        model = "{dirs["ner"]}"
        batch_tokens = 4096

        [components.biomegatron_re]
        factory = "biomegatron_re"
        model = "{dirs["re"]}"
        """
        ),
        encoding="utf-8",
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.add_pipe("biomegatron_ner", config={"model": str(dirs["ner"])})
    nlp.add_pipe("biomegatron_re", config={"model": str(dirs["re"])})
    doc = nlp(text)
    expected = [[s.start_char, s.end_char, s.label_] for s in doc.spans["biomegatron_ner"]]
    assert got["by_name"] == got["by_config"] == got["by_load"] == expected and expected
    assert got["relations"] == got["relations_config"] == got["relations_load"] and got["relations"]
    assert [(r["head"], r["tail"], r["label"]) for r in got["relations"]] == [
        (r["head"], r["tail"], r["label"]) for r in doc._.biomegatron_relations
    ]


def test_to_disk_from_disk_offline(dirs, tmp_path, pubmed_docs):
    models = tmp_path / "models"
    shutil.copytree(dirs["ner"], models / "ner")
    shutil.copytree(dirs["re"], models / "re")
    nlp = full_pipeline({"ner": models / "ner", "re": models / "re"})
    texts = [p.text for d in pubmed_docs[:8] for p in d.passages]
    before = [summary(doc) for doc in nlp.pipe(texts)]
    annotators = (nlp.get_pipe("biomegatron_ner").annotator, nlp.get_pipe("biomegatron_re").annotator)
    nlp.to_disk(tmp_path / "pipeline")
    shutil.rmtree(models)  # the saved pipeline must not need the original model folders
    saved = tmp_path / "pipeline" / "biomegatron_ner" / MODEL_SUBDIR
    assert (saved / "model.safetensors").is_file() and not list(saved.glob("*.bin"))
    loaded = spacy.load(tmp_path / "pipeline")
    assert loaded.pipe_names == nlp.pipe_names
    after = [summary(doc) for doc in loaded.pipe(texts)]
    assert after == before  # identical, scores included
    assert (loaded.get_pipe("biomegatron_ner").annotator, loaded.get_pipe("biomegatron_re").annotator) == annotators
    assert sum(len(s["spans"]) for s in after) > 20
    loaded.to_disk(tmp_path / "pipeline")  # saving onto its own folder keeps the model
    assert (saved / "model.safetensors").is_file()


def test_docs_and_components_serialize(dirs, pubmed_docs):
    nlp = full_pipeline(dirs)
    nlp.get_pipe("abbreviation_detector").make_serializable = True  # scispaCy's option: dicts, not Spans
    texts = [p.text for d in pubmed_docs[:5] for p in d.passages]
    docs = list(nlp.pipe(texts))
    expected = [summary(d) for d in docs]
    bin_ = DocBin(store_user_data=True, docs=docs)
    restored = list(DocBin().from_bytes(bin_.to_bytes()).get_docs(nlp.vocab))
    assert [summary(d) for d in restored] == expected
    assert [summary(pickle.loads(pickle.dumps(d))) for d in docs] == expected
    ner = nlp.get_pipe("biomegatron_ner")
    blob = pickle.dumps(ner)
    assert len(blob) < 50_000  # no weights inside
    clone = pickle.loads(blob)
    assert clone._engine is None and clone.annotator == ner.annotator


@pytest.mark.timeout(400)
def test_n_process_2_after_scispacy_components(dirs, pubmed_docs):
    nlp = full_pipeline(dirs)
    nlp.get_pipe("abbreviation_detector").make_serializable = True  # see the module docstring of spacy_components
    texts = [p.text for d in pubmed_docs[:16] for p in d.passages]
    one = [summary(d) for d in nlp.pipe(texts)]
    two = list(nlp.pipe(texts, n_process=2, batch_size=4))
    assert len(two) == len(texts)
    for a, b in zip(one, [summary(d) for d in two]):
        _same(a, b)
    assert any(d._.abbreviations for d in two)  # the abbreviation detector ran in the workers
    assert sum(len(s["spans"]) for s in one) > 50


def test_missing_or_bad_model(tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("biomegatron_ner")
    with pytest.raises(ConfigError, match="no model"):
        nlp("Aspirin")
    bad = spacy.blank("en")
    bad.add_pipe("biomegatron_re", config={"model": str(tmp_path / "nowhere")})
    with pytest.raises(ModelError, match="nowhere"):
        bad.initialize()
    with pytest.raises(ModelError, match="was not saved by"):
        bad.get_pipe("biomegatron_re").from_disk(tmp_path)


def test_loading_a_saved_pipeline_with_our_components_warns_no_w036(dirs, tmp_path):
    """README's pipeline (build_pipeline() + our two components), saved and loaded with `spacy.load`:
    no W036 ("component 'matcher' does not have any patterns defined"), because the saved config's
    `after_pipeline_creation` callback gives the rebuilt abbreviation detector our matchers again."""
    import warnings

    from corpora.preprocess.abbreviation_matchers import OrthSequenceMatcher

    nlp = build_pipeline()
    nlp.add_pipe("biomegatron_ner", config={"model": str(dirs["ner"])})
    nlp.add_pipe("biomegatron_re", config={"model": str(dirs["re"])})
    nlp.to_disk(tmp_path / "pipeline")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = spacy.load(tmp_path / "pipeline")
        doc = loaded("Aspirin induced heart failure (HF) in rats. Naloxone reversed the HF.")
        loaded("No short form is defined in this sentence.")  # spaCy's empty matcher warned here
    assert loaded.pipe_names == nlp.pipe_names
    assert isinstance(loaded.get_pipe("abbreviation_detector").global_matcher, OrthSequenceMatcher)
    assert [str(a) for a in doc._.abbreviations] == ["HF", "HF"]
    assert len(list(doc.sents)) == 2
    assert [str(w.message) for w in caught if "W036" in str(w.message)] == []
