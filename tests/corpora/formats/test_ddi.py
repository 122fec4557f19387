"""DDI corpus 2013 XML: reader offsets, detection, the `ddi` relation task, a tiny RE training run.

The DDI corpus is CC BY-NC, so nothing of it is bundled: the files here are composed by the tests in
the corpus's layout (inclusive charOffset ends, `;`-separated fragments, `&#xd;&#xa;` inside a
sentence, multi-line elements). Expected offsets are computed from the composed strings with
`str.index`, independently of the reader. The real corpus is read only when the environment
variable BIOMED_CORPORA names a folder holding `ddi/` (`.ci/run` sets it where the corpora are).
"""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pytest
import torch

from biomodels.data.loading import choose_relation_task
from biomodels.data.re_candidates import DDI_TASK, generate_candidates
from corpora.errors import MalformedInputError, OffsetMismatchError, UnknownFormatError
from corpora.formats.ddi import read_ddi
from corpora.formats.registry import detect_format, expand_inputs, read_documents
from corpora.validation import check_entity_offsets, check_relation_arguments
from tests.helpers.paths import ROOT

SAMPLES = ROOT / "corpora" / "samples"
CORPORA = os.environ.get("BIOMED_CORPORA")  # a folder of the public corpora, when there is one
REAL_DDI = Path(CORPORA) / "ddi" if CORPORA else None

S0 = "Coadministration of ketoconazole and oral midazolam\r\nincreases plasma midazolam levels."
S1 = "Nonheme and heme iron absorption is reduced by antacids; Maalox had no effect."
# (sentence index, entity suffix, type, [(start, inclusive end), ...], written text)
ENTITIES = [
    (0, "e0", "drug", [(S0.index("ketoconazole"), S0.index("ketoconazole") + 11)], "ketoconazole"),
    (0, "e1", "drug", [(S0.index("midazolam"), S0.index("midazolam") + 8)], "midazolam"),
    (0, "e2", "drug", [(S0.rindex("midazolam"), S0.rindex("midazolam") + 8)], "midazolam"),
    (1, "e0", "drug", [(0, 6), (S1.index("iron"), S1.index("iron") + 3)], "Nonheme iron"),
    (1, "e1", "drug", [(S1.index("heme iron"), S1.index("heme iron") + 8)], "heme iron"),
    (1, "e2", "group", [(S1.index("antacids"), S1.index("antacids") + 7)], "antacids"),
    (1, "e3", "brand", [(S1.index("Maalox"), S1.index("Maalox") + 5)], "Maalox"),
]
# (sentence index, e1, e2, ddi, type)
PAIRS = [
    (0, "e0", "e1", "true", "mechanism"),
    (0, "e0", "e2", "false", None),
    (0, "e1", "e2", "false", None),
    (1, "e0", "e1", "false", None),
    (1, "e0", "e2", "true", "mechanism"),
    (1, "e0", "e3", "false", None),
    (1, "e1", "e2", "true", "effect"),
    (1, "e1", "e3", "false", None),
    (1, "e2", "e3", "true", "advise"),
]


def _attr(value: str) -> str:
    return quoteattr(value, {"\r": "&#xd;", "\n": "&#xa;"})


def ddi_xml(doc_id: str, sentences: list[str], entities=ENTITIES, pairs=PAIRS) -> str:
    """A DDI 2013 file as the corpus writes it (entities and pairs split over two lines)."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', f"<document id={_attr(doc_id)}>"]
    for k, text in enumerate(sentences):
        sid = f"{doc_id}.s{k}"
        lines.append(f"    <sentence id={_attr(sid)} text={_attr(text)}>")
        for sk, suffix, etype, spans, written in entities:
            if sk == k:
                offs = ";".join(f"{s}-{e}" for s, e in spans)
                lines.append(f'        <entity id="{sid}.{suffix}" charOffset="{offs}"')
                lines.append(f"            type={_attr(etype)} text={_attr(written)}/>")
        for i, (sk, a, b, flag, rtype) in enumerate(p for p in pairs if p[0] == k):
            typ = f" type={_attr(rtype)}" if rtype else ""
            lines.append(f'        <pair id="{sid}.p{i}"')
            lines.append(f'            e1="{sid}.{a}" e2="{sid}.{b}" ddi="{flag}"{typ}/>')
        lines.append("    </sentence>")
    lines.append("</document>")
    return "\n".join(lines) + "\n"


@pytest.fixture
def ddi_file(tmp_path: Path) -> Path:
    path = tmp_path / "Ketoconazole_ddi.xml"
    path.write_text(ddi_xml("DDI-DrugBank.d1", [S0, S1]), encoding="utf-8")
    return path


def test_offsets_passages_and_relations_are_exact(ddi_file: Path) -> None:
    docs = list(read_ddi(ddi_file))
    assert len(docs) == 1
    doc = docs[0]
    assert doc.id == doc.document_id == "DDI-DrugBank.d1"
    assert doc.source.format == "ddi-xml"
    assert doc.text == S0 + " " + S1
    base = [0, len(S0) + 1]
    assert [(p.id, p.type, p.text, p.offsets) for p in doc.passages] == [
        ("DDI-DrugBank.d1.s0", "sentence", S0, [[0, len(S0)]]),
        ("DDI-DrugBank.d1.s1", "sentence", S1, [[base[1], base[1] + len(S1)]]),
    ]
    assert [(s.start, s.end) for s in doc.sentences] == [(0, len(S0)), (base[1], base[1] + len(S1))]
    got = {e.id: (e.type, e.offsets, e.text) for e in doc.entities}
    assert len(got) == len(ENTITIES)
    for k, suffix, etype, spans, _ in ENTITIES:
        sentence = (S0, S1)[k]
        expected = [[base[k] + s, base[k] + e + 1] for s, e in spans]
        assert got[f"DDI-DrugBank.d1.s{k}.{suffix}"] == (etype, expected, [sentence[s : e + 1] for s, e in spans])
    # the discontinuous "Nonheme iron" keeps its two fragments; the CR/LF counts as two characters
    nonheme = got["DDI-DrugBank.d1.s1.e0"]
    assert [doc.text[s:e] for s, e in nonheme[1]] == ["Nonheme", "iron"]
    assert doc.text[slice(*got["DDI-DrugBank.d1.s0.e2"][1][0])] == "midazolam" and "\r\n" in doc.text
    check_entity_offsets(doc, ddi_file)
    check_relation_arguments(doc, ddi_file)
    positives = [p for p in PAIRS if p[3] == "true"]
    assert len(doc.relations) == len(positives) == 4
    assert sorted((r.type, r.arg1_id, r.arg2_id) for r in doc.relations) == sorted(
        (t, f"DDI-DrugBank.d1.s{k}.{a}", f"DDI-DrugBank.d1.s{k}.{b}") for k, a, b, _, t in positives
    )
    assert doc.relations[0].id == "DDI-DrugBank.d1.s0.p0"
    assert doc.metadata.extra is None


def test_detected_as_ddi_and_other_formats_unchanged(ddi_file: Path, tmp_path: Path) -> None:
    assert detect_format(ddi_file) == "ddi-xml"
    assert [d.id for d in read_documents(ddi_file)] == ["DDI-DrugBank.d1"]
    empty = tmp_path / "NoDrugs_ddi.xml"
    empty.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<document id="DDI-DrugBank.d9">\n'
        '    <sentence id="DDI-DrugBank.d9.s0" text="No interactions are known."/>\n</document>\n',
        encoding="utf-8",
    )
    assert detect_format(empty) == "ddi-xml"
    assert [(len(d.entities), d.text) for d in read_ddi(empty)] == [(0, "No interactions are known.")]
    bioc = tmp_path / "bioc.xml"
    bioc.write_text(
        '<?xml version="1.0"?>\n<collection><source>x</source><document><id>1</id>'
        "<passage><offset>0</offset><sentence><offset>0</offset><text>A b.</text></sentence></passage>"
        "</document></collection>\n",
        encoding="utf-8",
    )
    assert detect_format(bioc) == "bioc-xml"
    other = tmp_path / "other.xml"
    other.write_text("<document><title>no sentences here</title></document>\n", encoding="utf-8")
    with pytest.raises(UnknownFormatError):
        detect_format(other)
    for sample in expand_inputs([SAMPLES]):
        try:
            assert detect_format(sample) != "ddi-xml", sample
        except UnknownFormatError:
            pass


def test_folder_of_files_is_expanded(tmp_path: Path) -> None:
    for sub, doc_id in (("Train/DrugBank", "DDI-DrugBank.d1"), ("Train/MedLine", "DDI-MedLine.d2")):
        folder = tmp_path / sub
        folder.mkdir(parents=True)
        (folder / f"{doc_id} file_ddi.xml").write_text(ddi_xml(doc_id, [S0, S1]), encoding="utf-8")
    (tmp_path / "README").write_text("about the corpus\n", encoding="utf-8")
    files = expand_inputs([tmp_path])
    assert [f.name for f in files] == ["DDI-DrugBank.d1 file_ddi.xml", "DDI-MedLine.d2 file_ddi.xml"]
    assert [d.id for f in files for d in read_documents(f)] == ["DDI-DrugBank.d1", "DDI-MedLine.d2"]


def test_offset_mismatch_names_file_sentence_entity_and_line(tmp_path: Path) -> None:
    bad = [list(e) for e in ENTITIES]
    bad[5][3] = [(S1.index("antacids"), S1.index("antacids") + 4)]  # "antac" for "antacids"
    path = tmp_path / "bad_ddi.xml"
    text = ddi_xml("DDI-MedLine.d7", [S0, S1], [tuple(e) for e in bad])
    path.write_text(text, encoding="utf-8")
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if 'id="DDI-MedLine.d7.s1.e2"' in ln)
    with pytest.raises(OffsetMismatchError) as err:
        list(read_ddi(path))
    # libxml2 numbers an element by the line its start tag ends on: the second line of the entity
    assert err.value.path == str(path) and err.value.line == line + 1
    assert (
        "DDI-MedLine.d7.s1" in str(err.value)
        and "DDI-MedLine.d7.s1.e2" in str(err.value)
        and "'antac'" in str(err.value)
    )


def test_fragments_one_character_off_are_moved_and_recorded(tmp_path: Path) -> None:
    # as DDI-DrugBank.d216.s16.e2 of the release: every fragment one character left of its text
    sentence = "It did not affect (R)- or (S)-warfarin levels."
    r, w = sentence.index("(R)-"), sentence.index("warfarin")
    ents = [(0, "e0", "drug", [(r - 1, r + 2), (w - 1, w + 6)], "(R)-warfarin")]
    path = tmp_path / "Eszopiclone_ddi.xml"
    path.write_text(ddi_xml("DDI-DrugBank.d216", [sentence], ents, []), encoding="utf-8")
    (doc,) = read_ddi(path)
    assert doc.entities[0].offsets == [[r, r + 4], [w, w + 8]] and doc.entities[0].text == ["(R)-", "warfarin"]
    assert json.loads(doc.metadata.extra) == {
        "ddi": {"moved_offsets": {"DDI-DrugBank.d216.s0.e0": f"{r - 1}-{r + 2};{w - 1}-{w + 6}"}}
    }


def test_untyped_positive_pair_and_bad_pairs(tmp_path: Path) -> None:
    path = tmp_path / "untyped_ddi.xml"
    path.write_text(ddi_xml("D.d1", [S0], ENTITIES[:3], [(0, "e0", "e1", "true", None)]), encoding="utf-8")
    (doc,) = read_ddi(path)
    assert [(r.type, r.arg1_id) for r in doc.relations] == [("int", "D.d1.s0.e0")]
    assert json.loads(doc.metadata.extra) == {"ddi": {"untyped_pairs": ["D.d1.s0.p0"]}}
    path.write_text(ddi_xml("D.d1", [S0], ENTITIES[:3], [(0, "e0", "e9", "true", "effect")]), encoding="utf-8")
    with pytest.raises(MalformedInputError, match=r"line \d+.*D\.d1\.s0\.p0.*D\.d1\.s0\.e9"):
        list(read_ddi(path))
    path.write_text(ddi_xml("D.d1", [S0], ENTITIES[:3], [(0, "e0", "e1", "maybe", None)]), encoding="utf-8")
    with pytest.raises(MalformedInputError, match="ddi='maybe'"):
        list(read_ddi(path))
    path.write_text(ddi_xml("D.d1", [S0], ENTITIES[:3], [])[:-20], encoding="utf-8")
    with pytest.raises(MalformedInputError, match="not well-formed"):
        list(read_ddi(path))


def _raw_sentences(path: Path) -> list[tuple[int, int]]:
    """(entities, positive pairs) per sentence, counted with regexes on the raw file."""
    raw = path.read_text(encoding="utf-8")
    blocks = re.findall(r"<sentence\b[^>]*?(?:/>|>.*?</sentence>)", raw, re.S)
    return [(len(re.findall(r"<entity\b", b)), len(re.findall(r'ddi="true"', b))) for b in blocks]


def test_ddi_candidates_are_every_unordered_drug_pair_of_a_sentence(ddi_file: Path) -> None:
    docs = list(read_ddi(ddi_file))
    assert choose_relation_task(docs, "auto") is DDI_TASK and choose_relation_task(docs, "ddi") is DDI_TASK
    cands, stats = generate_candidates(docs, DDI_TASK)
    counts = _raw_sentences(ddi_file)
    assert counts == [(3, 1), (4, 3)]
    per_sentence = [sum(1 for c in cands if c.sentence_index == k) for k in range(len(counts))]
    assert per_sentence == [n * (n - 1) // 2 for n, _ in counts] == [3, 6]
    assert len(cands) == len(PAIRS)  # the corpus lists one <pair> per unordered pair
    assert stats.positives == stats.relations_covered == sum(p for _, p in counts) == 4
    labels = {tuple(c.arg1.id.split(".")[-2:]) + (c.arg2.id.split(".")[-1],): c.label for c in cands}
    expected = {(f"s{k}", a, b): (t if flag == "true" else "false") for k, a, b, flag, t in PAIRS}
    assert labels == expected


def test_tiny_re_training_on_ddi_files(tmp_path: Path) -> None:
    data = tmp_path / "ddi"
    data.mkdir()
    for i in range(4):
        (data / f"drug{i}_ddi.xml").write_text(ddi_xml(f"DDI-DrugBank.d{i}", [S0, S1]), encoding="utf-8")
    from biomodels.training.api import train

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path / "model"
        result = train(
            "re",
            "scratch",
            [data],
            [data],
            out,
            {
                "layers": 2,
                "hidden": 32,
                "heads": 2,
                "progress": False,
                "max_steps": 5,
                "batch_size": 8,
                "lr": 1e-3,
                "vocab_size": 200,
                "max_length": 96,
                "relation_task": "ddi",
            },
        )
    finally:
        torch.set_num_threads(before)
    assert result.global_step == 5
    meta = json.loads((out / "biomed.json").read_text())
    assert meta["relation_task"] == "ddi" and meta["relation_input"] == "documents"
    assert json.loads((out / "labels.json").read_text())["labels"] == ["false", "advise", "effect", "int", "mechanism"]
    assert {f["kind"] for f in meta["training_data"]["train"]} == {"ddi-xml"} and len(
        meta["training_data"]["train"]
    ) == 4


def test_real_ddi_corpus_offsets_and_pair_counts() -> None:
    if REAL_DDI is None or not REAL_DDI.is_dir():
        pytest.skip("no DDI corpus: set BIOMED_CORPORA to a folder holding ddi/ (it is not bundled: CC BY-NC)")
    files = expand_inputs([REAL_DDI])
    assert files and {detect_format(f) for f in files} == {"ddi-xml"}
    raw_entities = raw_positives = raw_pairs = 0
    n_entities = n_relations = 0
    moved: list[str] = []
    docs = []
    for f in files:
        raw = f.read_text(encoding="utf-8")
        raw_entities += len(re.findall(r"<entity\b", raw))
        raw_positives += len(re.findall(r'ddi="true"', raw))
        raw_pairs += len(re.findall(r"<pair\b", raw))
        # independent parse (stdlib ElementTree): the written offsets and text of every entity
        written = {}
        cursor = 0
        for s in ET.parse(f).getroot().iter("sentence"):
            for e in s.iter("entity"):
                written[e.get("id")] = (cursor, e.get("charOffset"), e.get("text"))
            cursor += len(s.get("text")) + 1
        (doc,) = read_ddi(f)
        text = doc.text
        assert set(written) == {e.id for e in doc.entities}, f
        for ent in doc.entities:
            base, char_offset, want = written[ent.id]
            spans = [[base + int(a), base + int(b) + 1] for a, b in (p.split("-") for p in char_offset.split(";"))]
            frags = [text[s:e] for s, e in ent.offsets]
            assert want in (" ".join(frags), "".join(frags)), (f, ent.id)
            if ent.offsets != spans:
                moved.append(ent.id)
        check_entity_offsets(doc, f)
        check_relation_arguments(doc, f)
        n_entities += len(doc.entities)
        n_relations += len(doc.relations)
        docs.append(doc)
    assert moved == ["DDI-DrugBank.d216.s16.e2"]  # the one entity of the release one character off
    assert n_entities == raw_entities
    assert n_relations == raw_positives
    cands, stats = generate_candidates(docs, DDI_TASK)
    assert len(cands) == raw_pairs and stats.positives == raw_positives
    print(f"DDI: {len(files)} files, {n_entities} entities, {raw_pairs} pairs, {n_relations} positive")
