"""scispaCy preprocessing on the bundled samples: abbreviations, offset invariants, workers, bad input.

Expected abbreviation pairs and sentences were read off the raw sample files by hand (the
"long form (SHORT)" definitions and the sentence boundaries around "e.g.", "et al.", "E. coli" ...),
not copied from the code's output.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from corpora.errors import ConfigError
from corpora.formats.pubtator import read_pubtator
from corpora.formats.registry import detect_format, expand_inputs, get_reader
from corpora.preprocess.documents import preprocess_documents
from corpora.preprocess.pipeline import build_pipeline, pipeline_fingerprint
from corpora.preprocess.sentence_segmentation import sentence_starts
from corpora.schema import Document, Passage, passages_from_texts
from tests.helpers.documents import mixed_subset
from tests.helpers.paths import ROOT

SAMPLES = ROOT / "corpora" / "samples"
NCBI = SAMPLES / "ncbi-disease" / "NCBI_train_sample.PubTator.txt"
CDR = SAMPLES / "bc5cdr" / "CDR_train_sample.PubTator.txt"
MEDLINE = SAMPLES / "pubmed" / "medline16n0902.xml.gz"

# scispaCy's detector runs an empty matcher on text without abbreviations (spaCy warns W036).
pytestmark = pytest.mark.filterwarnings("ignore:.*W036")


@pytest.fixture(scope="module")
def nlp():
    return build_pipeline()


def _read(path: Path) -> list[Document]:
    return [d for d in get_reader(detect_format(path))(path) if isinstance(d, Document)]


@pytest.fixture(scope="module")
def annotated(nlp) -> dict[str, list[Document]]:
    """Every bundled sample file that a reader reads, preprocessed once: {file name: documents}."""
    out = {}
    for path in expand_inputs([SAMPLES]):
        out[path.name] = list(preprocess_documents(_read(path), nlp))
    return out


def _doc(annotated: dict[str, list[Document]], file: str, pmid: str) -> Document:
    (doc,) = [d for d in annotated[file] if d.document_id == pmid]
    return doc


# (file, PMID) -> the (short, long) pairs defined there as "long (short)"; exact = every pair found.
ABBREVIATIONS = {
    ("NCBI_train_sample.PubTator.txt", "10192393"): ({("APC", "adenomatous polyposis coli")}, True),
    ("NCBI_train_sample.PubTator.txt", "10196379"): ({("BRCA1", "breast cancer susceptibility gene 1")}, True),
    ("NCBI_train_sample.PubTator.txt", "10021369"): (
        {("APC", "adenomatous polyposis coli"), ("GSK-3beta", "glycogen synthase kinase 3beta")},
        True,
    ),
    ("NCBI_train_sample.PubTator.txt", "10085150"): ({("TfR", "transferrin receptor"), ("Tf", "transferrin")}, True),
    ("NCBI_train_sample.PubTator.txt", "10090880"): ({("FMF", "Familial Mediterranean fever")}, True),
    ("NCBI_train_sample.PubTator.txt", "10090885"): ({("ALPS", "Autoimmune lymphoproliferative syndrome")}, True),
    ("NCBI_train_sample.PubTator.txt", "10071185"): ({("DPD", "Dihydropyrimidine dehydrogenase")}, True),
    ("CDR_train_sample.PubTator.txt", "435349"): ({("Sch", "Suxamethonium chloride")}, True),
    ("CDR_train_sample.PubTator.txt", "1378968"): (
        {("GFR", "glomerular filtration rate"), ("HP", "high protein")},
        True,
    ),
    ("CDR_train_sample.PubTator.txt", "2505783"): ({("CAA", "chloroacetaldehyde")}, True),
    ("pubmed4.xml", "27797938"): (
        {("SNPs", "single-nucleotide polymorphisms"), ("TERT", "telomerase reverse transcriptase")},
        True,
    ),
    ("pubmed5.xml", "28775130"): (
        {("TSH", "Thyroid-stimulating hormone"), ("anti-TPO", "antithyroid peroxidase")},
        True,
    ),
    ("pubmed7.xml", "29963580"): ({("MRI", "magnetic resonance imaging"), ("CT", "computed-tomography")}, True),
    # Also found there: ("TTT", "treatment") for "targeted testing and treatment (TTT)", a known
    # Schwartz-Hearst miss (it takes the shortest match), so this one is checked as a subset.
    ("test_current_medline.xml.gz", "28786991"): (
        {
            ("FBP", "foreign-born populations"),
            ("US", "United States"),
            ("LTBI", "latent TB infection"),
            ("CI", "confidence intervals"),
        },
        False,
    ),
}


def test_abbreviations_in_bundled_abstracts(annotated):
    for (file, pmid), (expected, exact) in ABBREVIATIONS.items():
        doc = _doc(annotated, file, pmid)
        text = doc.text
        found = {(a.short_form, a.long_form) for a in doc.abbreviations}
        assert found == expected if exact else expected <= found, (file, pmid, found)
        for a in doc.abbreviations:
            assert text[a.short_offsets[0] : a.short_offsets[1]] == a.short_form
            assert text[a.long_offsets[0] : a.long_offsets[1]] == a.long_form
        for short, long in expected:
            definition = f"{long} ({short})"
            start = text.index(definition)
            long_span, short_span = [start, start + len(long)], [start + len(long) + 2, start + len(definition) - 1]
            assert any(a.long_offsets == long_span and a.short_offsets == short_span for a in doc.abbreviations), (
                pmid,
                short,
            )
            # Every use of the short form as a whole word ("HP+NX" is one word), in any passage,
            # points to the definition.
            uses = [m.start() for m in re.finditer(rf"(?<![\w+/-]){re.escape(short)}(?![\w+/-])", text)]
            recorded = sorted(a.short_offsets[0] for a in doc.abbreviations if a.short_form == short)
            assert recorded == uses, (pmid, short)
            assert all(a.long_offsets == long_span for a in doc.abbreviations if a.short_form == short)
    assert sum(len(e) for e, _ in ABBREVIATIONS.values()) >= 10 and len(ABBREVIATIONS) >= 5


def test_title_uses_of_a_short_form_defined_in_the_abstract(annotated):
    # NCBI 1317264: the title says "The APC gene, ..."; the abstract defines
    # "adenomatous polyposis coli (APC)". scispaCy sees one passage at a time; the title use is
    # linked to the abstract's definition.
    doc = _doc(annotated, "NCBI_train_sample.PubTator.txt", "1317264")
    text = doc.text
    definition = text.index("adenomatous polyposis coli (APC)")
    title_use = text.index("The APC gene") + 4
    assert title_use < len(doc.passages[0].text) < definition
    (in_title,) = [a for a in doc.abbreviations if a.short_offsets == [title_use, title_use + 3]]
    assert in_title.long_offsets == [definition, definition + len("adenomatous polyposis coli")]
    assert in_title.long_form == "adenomatous polyposis coli" and in_title.short_form == "APC"
    # Plain lowercase "short forms" are not spread: BC5CDR 19105845's "mice" stays in its passage.
    mice = _doc(annotated, "CDR_dev_sample.PubTator.txt", "19105845")
    title_end = len(mice.passages[0].text)
    assert not [a for a in mice.abbreviations if a.short_form == "mice" and a.short_offsets[0] < title_end]


def _check_invariants(doc: Document) -> None:
    text = doc.text
    bounds = sorted((p.offsets[0][0], p.offsets[0][0] + len(p.text)) for p in doc.passages)
    covered = bytearray(len(text))
    previous_end = -1
    for s in doc.sentences:
        chunk = text[s.start : s.end]
        assert chunk and chunk == chunk.strip(), (doc.id, s)
        assert sum(1 for a, b in bounds if a <= s.start and s.end <= b) == 1, (doc.id, s)
        assert s.start >= previous_end, (doc.id, "overlap", s)
        previous_end = s.end
        covered[s.start : s.end] = b"\x01" * (s.end - s.start)
    for a, b in bounds:
        for i in range(a, b):
            if not text[i].isspace():
                assert covered[i], (doc.id, i, text[max(0, i - 20) : i + 20])
    token_chars = 0
    sentence_index = 0
    for t in doc.tokens:
        chunk = text[t.start : t.end]
        assert chunk and not any(c.isspace() for c in chunk), (doc.id, t, chunk)
        while doc.sentences[sentence_index].end <= t.start:
            sentence_index += 1
        s = doc.sentences[sentence_index]
        assert s.start <= t.start and t.end <= s.end, (doc.id, t, s)
        token_chars += t.end - t.start
    # Tokens partition the non-whitespace characters (counted independently from the raw text).
    assert token_chars == sum(1 for a, b in bounds for c in text[a:b] if not c.isspace())


def test_offsets_are_exact_on_every_bundled_sample(annotated):
    counts = {name: len(docs) for name, docs in annotated.items()}
    assert counts["medline16n0902.xml.gz"] == 604 and counts["NCBI_train_sample.PubTator.txt"] == 60
    assert len(counts) >= 20  # every reader: PubMed XML, PubTator, BioC, brat, ChemProt, CoNLL
    for docs in annotated.values():
        for doc in docs:
            _check_invariants(doc)
            if doc.text.strip():
                assert doc.sentences and doc.tokens


def test_tokens_tile_every_whitespace_separated_chunk(annotated):
    # Checked against the raw text: every whitespace-separated chunk holds at least one token, and
    # the tokens of a chunk tile it exactly (no character lost, none shared).
    for doc in annotated["CDR_train_sample.PubTator.txt"]:
        text = doc.text
        for m in re.finditer(r"\S+", text):
            inside = [t for t in doc.tokens if m.start() <= t.start < m.end()]
            assert inside and inside[0].start == m.start() and inside[-1].end == m.end()
            assert all(a.end == b.start for a, b in zip(inside, inside[1:]))


SENTENCES = [
    # (file, PMID, phrase, the whole sentence around it, as read in the raw file)
    (
        "chemprot_sample_abstracts.tsv",
        "23494186",
        "(e.g. ezetimibe",
        (
            "In patients who do not reach the LDL-C target, combination therapy with additional LDL-C lowering "
            "drugs (e.g. ezetimibe, bile acid sequestrants or fibrates) should be considered."
        ),
    ),
    (
        "medline16n0902.xml.gz",
        "25214372",
        "(e.g., emotion)",
        "Effects of item characteristics (e.g., emotion) were also evaluated.",
    ),
    (
        "medline16n0902.xml.gz",
        "26215130",
        "(i.e. hookworm",
        (
            "Besides high sensitivity, PCR may also enhance specificity by reducing microscopic misdiagnosis of "
            "morphologically similar helminth larvae (i.e. hookworm and S. stercoralis) in settings where both "
            "helminth species co-exist."
        ),
    ),
    (
        "medline16n0902.xml.gz",
        "26702418",
        "Skorokhod et al. (2015)",
        (
            "Plakortin is an antimalarial endoperoxide whose molecular anti-parasitic effect is described "
            "in\xa0Skorokhod et al. (2015) [1]."
        ),
    ),
    (
        "medline16n0902.xml.gz",
        "25294880",
        "did not lyse E. coli",
        (
            "In addition, VanX mutants with suppressed dipeptidase activity did not lyse E. coli cells, confirming "
            "that bacteriolysis originated from the dipeptidase activity of VanX."
        ),
    ),
    (
        "medline16n0902.xml.gz",
        "25294880",
        "E. coli cells undergoing",
        (
            "We also observed shape changes in E. coli cells undergoing VanX-mediated lysis with optical "
            "microscopy and classified these changes into three classes: bursting, deformation, and leaking fluid."
        ),
    ),
    (
        "CDR_dev_sample.PubTator.txt",
        "3115150",
        "0.63 and 2.5 mg/kg",
        (
            "Intraperitoneal ketanserin administration at doses of 0.63 and 2.5 mg/kg prevented the "
            "alfentanil-induced increase in electromyographic activity compared with animals pretreated "
            "with saline."
        ),
    ),
    (
        "CDR_train_sample.PubTator.txt",
        "1378968",
        "(40 vs. 19%)",
        (
            "Newborn female Wistar rats were fed a lithium-containing diet (50 mmol/kg) for 8 weeks and then "
            "randomized to normal diet, HP diet (40 vs. 19%), NX or HP+NX for another 8 weeks."
        ),
    ),
    (
        "chemprot_sample_abstracts.tsv",
        "9399970",
        "(-)-N-allylnormetazocine and",
        (
            "(-)-N-allylnormetazocine and (+)-propoxyphene substituted partially for the dezocine stimulus, an "
            "effect obtained even when tested up to doses that suppressed responding."
        ),
    ),
]


@pytest.mark.parametrize("file,pmid,phrase,sentence", SENTENCES, ids=[s[2] for s in SENTENCES])
def test_sentence_boundaries_on_real_sentences(annotated, file, pmid, phrase, sentence):
    doc = _doc(annotated, file, pmid)
    text = doc.text
    at = text.index(phrase)
    (s,) = [s for s in doc.sentences if s.start <= at < s.end]
    assert text[s.start : s.end] == sentence
    # Other sentences precede it: the split before it was made, not only the ones inside avoided.
    assert any(o.end <= s.start for o in doc.sentences)


@pytest.mark.parametrize(
    "text,expected",
    [
        (
            "Stress was induced, i.e. 24-h blood drawing was done. Results were clear.",
            ["Stress was induced, i.e. 24-h blood drawing was done.", "Results were clear."],
        ),
        (
            "Several drugs, e.g. the statins, were given. Then we stopped.",
            ["Several drugs, e.g. the statins, were given.", "Then we stopped."],
        ),
        (
            (
                "As shown by Smith et al. (2001) the cells grew. "
                "We then lysed E. coli cells with 2.5 mg lysozyme. mRNA rose."
            ),
            [
                "As shown by Smith et al. (2001) the cells grew.",
                "We then lysed E. coli cells with 2.5 mg lysozyme.",
                "mRNA rose.",
            ],
        ),
        (
            (
                "Levels rose (see Fig. 2. The second panel). Infection with S. Typhimurium was cleared. "
                "Patients had hepatitis B. We treated them."
            ),
            [
                "Levels rose (see Fig. 2. The second panel).",
                "Infection with S. Typhimurium was cleared.",
                "Patients had hepatitis B.",
                "We treated them.",
            ],
        ),
        (
            "Is it safe? Yes. A title without a period\nThe abstract starts here vs. there.",
            ["Is it safe?", "Yes.", "A title without a period", "The abstract starts here vs. there."],
        ),
    ],
)
def test_segmenter_rules(nlp, text, expected):
    doc = nlp(text)
    assert [s.text.strip() for s in doc.sents] == expected


def test_sentence_starts_whitespace_tokens_never_start():
    words = ["  ", "A", ".", "\n\n", "B", "."]
    assert sentence_starts(words, [False, False, False, False, False, False]) == [0, 4]


# --- pipeline, model, fingerprint --------------------------------------------------------------


def test_fingerprint_is_stable_and_names_components(nlp):
    fp = pipeline_fingerprint(nlp)
    assert fp["components"] == ["biomed_sentence_segmenter", "abbreviation_detector"]
    assert fp["model"] == {"name": "blank:en", "version": None}
    assert fp["spacy"] and fp["scispacy"] and len(fp["hash"]) == 16
    list(preprocess_documents(mixed_subset()[:5], nlp))  # using the pipeline must not change it
    assert pipeline_fingerprint(nlp) == fp
    assert pipeline_fingerprint(build_pipeline())["hash"] == fp["hash"]


def test_missing_scispacy_model_says_how_to_install():
    with pytest.raises(ConfigError, match=r"en_core_sci_sm.*not installed.*pip install https://.*en_core_sci_sm-"):
        build_pipeline("en_core_sci_sm")
    with pytest.raises(ConfigError, match="no_such_model_xyz"):
        build_pipeline("no_such_model_xyz")


def test_model_path_uses_the_models_sentence_boundaries(tmp_path):
    # No scispaCy model can be downloaded here, so build a tiny one: an untrained senter (its
    # boundaries are arbitrary but deterministic) plus a sentencizer that build_pipeline must drop.
    import spacy

    model = spacy.blank("en")
    model.add_pipe("senter")
    model.add_pipe("sentencizer")
    model.initialize()
    model.meta.update(name="tiny_senter", version="0.0.1")
    model.to_disk(tmp_path / "tiny")
    nlp = build_pipeline(str(tmp_path / "tiny"))
    fp = pipeline_fingerprint(nlp)
    assert fp["components"] == ["senter", "abbreviation_detector"]
    assert fp["model"] == {"name": "en_tiny_senter", "version": "0.0.1"} and fp["sentence_rules"] is None
    docs = list(preprocess_documents(list(read_pubtator(NCBI))[:5], nlp))
    for doc in docs:
        _check_invariants(doc)
    doc = docs[0]
    abstract = doc.passages[1]
    start = abstract.offsets[0][0]
    expected = []
    for sent in nlp(abstract.text).sents:
        words = [t for t in sent if not t.is_space]
        expected.append((start + words[0].idx, start + words[-1].idx + len(words[-1].text)))
    assert [(s.start, s.end) for s in doc.sentences if s.start >= start] == expected
    assert {(a.short_form, a.long_form) for a in doc.abbreviations} == {("APC", "adenomatous polyposis coli")}

    plain = spacy.blank("en")
    plain.to_disk(tmp_path / "plain")
    with pytest.raises(ConfigError, match="no parser or senter"):
        build_pipeline(str(tmp_path / "plain"))


# --- bad input ---------------------------------------------------------------------------------


def _one(texts: list[str], doc_id: str = "x") -> Document:
    return Document(id=doc_id, document_id=doc_id, passages=passages_from_texts([("p", t) for t in texts]))


def test_empty_and_whitespace_passages(nlp, caplog):
    doc = _one(["Title of it.", "", "   \n\t ", "Body text here."])
    with caplog.at_level(logging.WARNING, logger="corpora.preprocess.pipeline"):
        (out,) = preprocess_documents([doc], nlp)
    assert [out.text[s.start : s.end] for s in out.sentences] == ["Title of it.", "Body text here."]
    assert [out.text[t.start : t.end] for t in out.tokens] == ["Title", "of", "it", ".", "Body", "text", "here", "."]
    assert any("only whitespace" in r.getMessage() and "passage 2" in r.getMessage() for r in caplog.records)
    (empty,) = preprocess_documents([_one([""])], nlp)
    assert empty.sentences == [] and empty.tokens == [] and empty.abbreviations == []


def test_passage_longer_than_max_length(nlp, caplog):
    abstract = list(read_pubtator(NCBI))[0].passages[1].text
    copies = 1_000_001 // (len(abstract) + 1) + 1
    text = " ".join([abstract] * copies)
    assert len(text) > 1_000_000 == nlp.max_length
    with caplog.at_level(logging.WARNING, logger="corpora.preprocess.pipeline"):
        (out,) = preprocess_documents([_one([text], "long")], nlp)
    assert any("max_length" in r.getMessage() and "pieces" in r.getMessage() for r in caplog.records)
    _check_invariants(out)
    # Pieces are cut at whitespace, and spaCy tokenizes whitespace-separated chunks independently,
    # so the tokens are exactly those of one copy, repeated at each copy's offset.
    (single,) = preprocess_documents([_one([abstract])], nlp)
    step = len(abstract) + 1
    expected = [(t.start + k * step, t.end + k * step) for k in range(copies) for t in single.tokens]
    assert [(t.start, t.end) for t in out.tokens] == expected
    assert len(out.abbreviations) == copies * len(single.abbreviations)


def test_unusual_characters(nlp, caplog):
    text = (
        "The α-synuclein\u00a0level rose.\x0cA new page starts\u200bhere. "
        "Caf\u0065\u0301 extract was given; ctrl\x01char stays. Zero\u2009width and "
        "tab\there. Interleukin 2 (IL-2) rose."
    )
    with caplog.at_level(logging.WARNING, logger="corpora.preprocess.pipeline"):
        (out,) = preprocess_documents([_one(["Title.", text])], nlp)
    _check_invariants(out)
    tokens = [out.text[t.start : t.end] for t in out.tokens]
    assert "α-synuclein" in tokens and "Cafe\u0301" in tokens and "ctrl\x01char" in tokens
    assert "starts\u200bhere" in tokens  # U+200B is not whitespace (str.isspace): kept inside
    sentences = [out.text[s.start : s.end] for s in out.sentences]
    assert sentences[1] == "The α-synuclein\u00a0level rose."  # the form feed ends a sentence
    assert sentences[2].startswith("A new page")
    assert [(a.short_form, a.long_form) for a in out.abbreviations] == [("IL-2", "Interleukin 2")]
    assert any("U+0001" in r.getMessage() for r in caplog.records)


def test_lone_surrogate_does_not_break_offsets(nlp, caplog):
    text = "Bad \ud800 byte here. Next sentence."
    with caplog.at_level(logging.WARNING, logger="corpora.preprocess.pipeline"):
        (out,) = preprocess_documents([_one([text])], nlp)
    assert [out.text[t.start : t.end] for t in out.tokens] == [
        "Bad",
        "\ud800",
        "byte",
        "here",
        ".",
        "Next",
        "sentence",
        ".",
    ]
    assert any("surrogate" in r.getMessage() for r in caplog.records)


def test_passage_order_and_gaps(nlp):
    # Passages listed out of order and with a gap: offsets still point into Document.text.
    doc = Document(
        id="g",
        document_id="g",
        passages=[
            Passage("b", "abstract", "Second part. Ends.", [[20, 38]]),
            Passage("a", "title", "First.", [[0, 6]]),
        ],
    )
    (out,) = preprocess_documents([doc], nlp)
    assert [out.text[s.start : s.end] for s in out.sentences] == ["First.", "Second part.", "Ends."]
    _check_invariants(out)
