"""BioC XML/JSON readers and writers on the bundled samples, checked against the raw files."""

from __future__ import annotations

import gzip
import io
import json
import re
import warnings
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from corpora.errors import EncodingError, MalformedInputError, OffsetMismatchError
from corpora.formats.bioc_json import read_bioc_json, write_bioc_json
from corpora.formats.bioc_xml import read_bioc_xml, write_bioc_xml
from corpora.formats.pubtator import read_pubtator, write_pubtator
from corpora.schema import Abbreviation, Entity, MeshTerm, Metadata, Normalization, Relation, Span
from tests.helpers.paths import ROOT

SAMPLES = ROOT / "corpora" / "samples"
CDR_XML = SAMPLES / "bc5cdr" / "CDR_train_sample.BioC.xml"
CDR_PUBTATOR = SAMPLES / "bc5cdr" / "CDR_train_sample.PubTator.txt"
EVERY_XML = SAMPLES / "bioc" / "everything.xml"
EVERY_JSON = SAMPLES / "bioc" / "everything.json"

_ANNOTATION = re.compile(r'<annotation id="([^"]*)">(.*?)</annotation>', re.S)


def without_source(docs):
    return [replace(d, source=None) for d in docs]


def raw_annotations(path: Path) -> list[dict]:
    """Annotations parsed independently with regular expressions (the samples are regular)."""
    found = []
    for aid, body in _ANNOTATION.findall(path.read_text(encoding="utf-8")):
        infons = dict(re.findall(r'<infon key="([^"]*)">([^<]*)</infon>', body))
        locs = [(int(o), int(n)) for o, n in re.findall(r'<location offset="(\d+)" length="(\d+)"/>', body)]
        text = re.search(r"<text>([^<]*)</text>", body).group(1)
        found.append({"id": aid, "infons": infons, "locations": locs, "text": text})
    return found


@pytest.fixture(scope="module")
def cdr():
    return list(read_bioc_xml(CDR_XML))


@pytest.fixture(scope="module")
def cdr_pubtator():
    return list(read_pubtator(CDR_PUBTATOR))


@pytest.mark.parametrize("path", [CDR_XML, EVERY_XML, EVERY_JSON], ids=lambda p: p.name)
def test_every_entity_span_selects_its_text(path):
    reader = read_bioc_json if path.suffix == ".json" else read_bioc_xml
    docs = list(reader(path))
    assert docs
    for doc in docs:
        text = doc.text
        for ent in doc.entities:
            assert len(ent.text) == len(ent.offsets) >= 1
            for (start, end), expected in zip(ent.offsets, ent.text):
                assert text[start:end] == expected, (doc.document_id, ent.id)


def test_cdr_counts_match_raw_xml(cdr, cdr_pubtator):
    raw = CDR_XML.read_text(encoding="utf-8")
    anns = raw_annotations(CDR_XML)
    assert len(cdr) == raw.count("<document>") == 50
    assert [d.document_id for d in cdr] == re.findall(r"<document>\s*<id>([^<]+)</id>", raw)
    assert sum(len(d.entities) for d in cdr) == raw.count("<annotation ") == len(anns)
    assert Counter(e.type for d in cdr for e in d.entities) == Counter(a["infons"]["type"] for a in anns)
    assert sum(len(d.relations) for d in cdr) == raw.count("<relation ")
    # composites: one BioC CompositeMention per 7-column PubTator line
    seven = [ln for ln in CDR_PUBTATOR.read_text(encoding="utf-8").split("\n") if len(ln.split("\t")) == 7]
    assert sum(a["infons"].get("CompositeRole") == "CompositeMention" for a in anns) == len(seven)


def test_cdr_annotations_equal_raw_locations(cdr):
    ents = [e for d in cdr for e in d.entities]
    anns = raw_annotations(CDR_XML)
    assert len(ents) == len(anns)
    for ent, ann in zip(ents, anns):
        assert ent.id == ann["id"] and ent.type == ann["infons"]["type"]
        assert ent.offsets == [[o, o + n] for o, n in ann["locations"]]
        assert " ".join(ent.text) == ann["text"]
        ids = [] if ann["infons"]["MESH"] == "-1" else ann["infons"]["MESH"].split("|")
        assert ent.normalized == [Normalization("MESH", i) for i in ids]


def test_discontinuous_individual_mentions(cdr):
    doc = next(d for d in cdr if d.document_id == "2234245")
    ents = {e.id: e for e in doc.entities}
    # raw: annotation 1, locations 0+6 and 20+8, text "Ocular toxicity", IndividualMention
    assert ents["1"].offsets == [[0, 6], [20, 28]] and ents["1"].text == ["Ocular", "toxicity"]
    assert ents["0"].offsets == [[0, 28]] and ents["0"].text == ["Ocular and auditory toxicity"]
    extra = json.loads(doc.metadata.extra)["bioc"]
    assert extra["annotations"]["1"]["infons"] == {"CompositeRole": "IndividualMention"}
    assert extra["collection"] == {"source": "PubTator", "date": "0/0/0", "key": "PubTator.key"}


def test_everything_xml_maps_every_element():
    docs = list(read_bioc_xml(EVERY_XML))
    assert len(docs) == 2
    d1, d2 = docs
    assert [(p.id, p.type, p.text, p.offsets) for p in d1.passages] == [
        ("1-P0", "", "abcdefghijklmnopqrstuvwxyz", [[0, 26]])
    ]
    assert [(e.id, e.text, e.offsets) for e in d1.entities] == [
        ("1", ["bc"], [[1, 3]]),
        ("2", ["fg"], [[5, 7]]),
        ("5", ["fg"], [[5, 7]]),
    ]
    assert [(r.id, r.arg1_id, r.arg2_id) for r in d1.relations] == [("R1", "1", "2"), ("R2", "1", "2")]
    extra = json.loads(d1.metadata.extra)["bioc"]
    assert extra["collection"] == {
        "source": "source",
        "date": "date",
        "key": "key",
        "infons": {"collection-infon-key": "collection-infon-value"},
    }
    assert extra["infons"] == {"document-infon-key": "document-infon-value"}
    assert extra["passages"] == {"1-P0": {"passage-infon-key": "passage-infon-value"}}
    assert extra["relations"]["R1"]["nodes"] == [["1", "role1"], ["2", "role2"]]
    # document 2: a passage given as two sentences at 27 and 34
    assert d2.passages[0].text == "abcdefg测试Non-ASCII" and d2.passages[0].offsets == [[27, 45]]
    assert d2.text == " " * 27 + "abcdefg测试Non-ASCII"
    assert d2.sentences == [Span(27, 34), Span(34, 45)]
    assert [(e.id, e.text, e.offsets) for e in d2.entities] == [("3", ["bc"], [[28, 30]]), ("4", ["测试"], [[34, 36]])]
    assert [(r.id, r.arg1_id, r.arg2_id) for r in d2.relations] == [("R3", "3", "")]
    assert json.loads(d2.metadata.extra)["bioc"]["sentences"]["27-34"] == {"sentence-infon-key": "sentence-infon-value"}


def test_everything_json_reads_like_the_xml():
    assert without_source(read_bioc_json(EVERY_JSON)) == without_source(read_bioc_xml(EVERY_XML))


def _relation_keys(doc):
    by_id = {e.id: e for e in doc.entities}
    return sorted(
        (
            r.type,
            tuple(map(tuple, by_id[r.arg1_id].offsets)),
            tuple(map(tuple, by_id[r.arg2_id].offsets)),
            tuple((n.db_name, n.db_id) for n in r.normalized),
        )
        for r in doc.relations
    )


def test_bc5cdr_pubtator_and_bioc_agree(cdr, cdr_pubtator):
    assert [d.document_id for d in cdr] == [d.document_id for d in cdr_pubtator]
    cid_lines = [ln for ln in CDR_PUBTATOR.read_text(encoding="utf-8").split("\n") if ln.split("\t")[1:2] == ["CID"]]
    assert sum(len(d.relations) for d in cdr) == len(cid_lines)
    for b, p in zip(cdr, cdr_pubtator):
        assert [(x.id, x.type, x.text, x.offsets) for x in b.passages] == [
            (x.id, x.type, x.text, x.offsets) for x in p.passages
        ]
        roles = {
            k: v.get("infons", {}).get("CompositeRole")
            for k, v in json.loads(b.metadata.extra)["bioc"].get("annotations", {}).items()
        }
        col7 = json.loads(p.metadata.extra)["pubtator"]["column7"] if p.metadata.extra else {}
        plain_b = {(e.offsets[0][0], e.offsets[0][1], e.type) for e in b.entities if roles.get(e.id) is None}
        plain_p = {(e.offsets[0][0], e.offsets[0][1], e.type) for e in p.entities if e.id not in col7}
        assert plain_b == plain_p, b.document_id
        comp_b = sorted(
            (tuple(map(tuple, e.offsets)), e.type, tuple(e.normalized))
            for e in b.entities
            if roles.get(e.id) == "CompositeMention"
        )
        comp_p = sorted((tuple(map(tuple, e.offsets)), e.type, tuple(e.normalized)) for e in p.entities if e.id in col7)
        assert comp_b == comp_p
        assert _relation_keys(b) == _relation_keys(p)
        assert all(r.type == "CID" and len(r.normalized) == 2 for r in b.relations)


def test_cdr_relations_equal_raw_infons(cdr):
    raw = CDR_XML.read_text(encoding="utf-8")
    rels = re.findall(
        r'<infon key="relation">CID</infon>\s*<infon key="Chemical">(\w+)</infon>\s*<infon key="Disease">(\w+)</infon>',
        raw,
    )
    got = [(r.normalized[0].db_id, r.normalized[1].db_id) for d in cdr for r in d.relations]
    assert got == rels
    for doc in cdr:
        by_id = {e.id: e for e in doc.entities}
        for rel in doc.relations:
            assert by_id[rel.arg1_id].type == "Chemical" and by_id[rel.arg2_id].type == "Disease"
            assert (
                rel.normalized[0] in by_id[rel.arg1_id].normalized
                and rel.normalized[1] in by_id[rel.arg2_id].normalized
            )


# ------------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("path", [CDR_XML, EVERY_XML, EVERY_JSON], ids=lambda p: p.name)
@pytest.mark.parametrize("target", ["xml", "json", "jsonl", "xml.gz"])
def test_round_trip(path, target, tmp_path):
    reader = read_bioc_json if path.suffix == ".json" else read_bioc_xml
    docs = list(reader(path))
    out = tmp_path / f"out.{target}"
    if target.startswith("xml"):
        assert write_bioc_xml(docs, out) == len(docs)
        back = list(read_bioc_xml(out))
    else:
        assert write_bioc_json(docs, out, jsonl=target == "jsonl") == len(docs)
        back = list(read_bioc_json(out))
    assert without_source(back) == without_source(docs)
    if target == "xml.gz":
        assert gzip.decompress(out.read_bytes()).startswith(b"<?xml")


def test_written_xml_is_stable_and_keeps_bc5cdr_shape(cdr, tmp_path):
    first = io.BytesIO()
    write_bioc_xml(cdr, first)
    path = tmp_path / "once.xml"
    path.write_bytes(first.getvalue())
    second = io.BytesIO()
    write_bioc_xml(read_bioc_xml(path), second)
    assert first.getvalue() == second.getvalue()
    text = first.getvalue().decode("utf-8")
    assert "biomed:" not in text  # everything of a BC5CDR document has a native BioC place
    assert text.count('<infon key="relation">CID</infon>') == CDR_XML.read_text(encoding="utf-8").count(
        '<infon key="relation">CID</infon>'
    )


def test_pubtator_through_bioc_and_back_is_exact(cdr_pubtator, tmp_path):
    path = tmp_path / "cdr.xml"
    write_bioc_xml(cdr_pubtator, path)
    back = list(read_bioc_xml(path))
    assert [(d.passages, d.entities, d.relations) for d in back] == [
        (d.passages, d.entities, d.relations) for d in cdr_pubtator
    ]
    out = io.StringIO()
    write_pubtator(back, out)
    assert out.getvalue() == CDR_PUBTATOR.read_text(encoding="utf-8")


def test_documents_from_elsewhere_survive_bioc(cdr_pubtator, tmp_path):
    """Fields BioC has no element for (tokens, abbreviations, metadata, scores) still round-trip."""
    doc = cdr_pubtator[0]
    extra_ent = Entity(
        "m1",
        "Gene",
        ["Naloxone"],
        [[0, 8]],
        [Normalization("NCBI Gene", "12"), Normalization("MESH", "D1"), Normalization("NCBI Gene", "13")],
        0.5,
        "model",
    )
    rich = replace(
        doc,
        id="run-1",
        sentences=[Span(0, 59), Span(60, 210), Span(211, 300)],
        tokens=[Span(0, 8), Span(9, 17)],
        abbreviations=[Abbreviation("A1", "BP", "blood pressure", [1, 3], [4, 18])],
        metadata=Metadata(
            journal="J Biol", year=1999, mesh_terms=[MeshTerm("D1", "x", True, ["q"])], extra='{"other":{"a":1}}'
        ),
        entities=doc.entities + [extra_ent],
        relations=doc.relations + [Relation("rx", "X", doc.entities[0].id, "m1", [Normalization("a", "b")], 0.25, "m")],
    )
    for writer, reader, name in ((write_bioc_xml, read_bioc_xml, "r.xml"), (write_bioc_json, read_bioc_json, "r.json")):
        writer([rich, cdr_pubtator[1]], tmp_path / name)
        assert without_source(reader(tmp_path / name)) == without_source([rich, cdr_pubtator[1]])


# -------------------------------------------------------------------------------------- bad input


def _edited(tmp_path: Path, old: str, new: str, source: Path = CDR_XML, name: str = "edited.xml") -> tuple[Path, int]:
    text = source.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / name
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path, text[: text.index(old)].count("\n") + 1


def _raises(exc_type, path: Path, reader=read_bioc_xml, **kw):
    with pytest.raises(exc_type) as info:
        list(reader(path, **kw))
    assert str(info.value).startswith(str(path)), str(info.value)
    return info.value


def test_malformed_xml_names_the_line(tmp_path):
    path, line = _edited(tmp_path, "</passage>", "</passag>")
    err = _raises(MalformedInputError, path)
    assert err.line == line and f"line {line}" in str(err)


def test_truncated_xml(tmp_path):
    text = CDR_XML.read_text(encoding="utf-8")
    cut = text.index("<document>", text.index("<document>") + 1) + 200
    path = tmp_path / "cut.xml"
    path.write_text(text[:cut], encoding="utf-8")
    with pytest.raises(MalformedInputError) as info:
        for _ in read_bioc_xml(path):
            pass
    assert info.value.line is not None and str(path) in str(info.value)


def test_non_utf8_xml(tmp_path):
    data = CDR_XML.read_bytes()
    pos = data.index(b"Naloxone reverses")
    path = tmp_path / "bad.xml"
    path.write_bytes(data[:pos] + b"\xff" + data[pos + 1 :])
    err = _raises(EncodingError, path)
    assert err.line == data[:pos].count(b"\n") + 1


def test_location_that_does_not_match_the_text(tmp_path):
    path, line = _edited(tmp_path, '<location offset="49" length="9"/>', '<location offset="48" length="9"/>')
    err = _raises(OffsetMismatchError, path)
    assert err.record == "227508" and err.line == line - 3  # the <annotation> element's line
    assert "' clonidin'" in str(err) and "record 227508" in str(err)


def test_mismatch_skip_drops_and_records(tmp_path):
    path, _ = _edited(tmp_path, '<location offset="49" length="9"/>', '<location offset="48" length="9"/>')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        docs = list(read_bioc_xml(path, mismatch="skip"))
    assert len(caught) == 1 and "227508" in str(caught[0].message)
    assert [e.id for e in docs[0].entities][:2] == ["0", "2"]
    assert json.loads(docs[0].metadata.extra)["bioc"]["skipped"] == [
        {"id": "1", "text": "clonidine", "offsets": [[48, 57]]}
    ]


def test_non_integer_location(tmp_path):
    path, line = _edited(tmp_path, '<location offset="49" length="9"/>', '<location offset="4x9" length="9"/>')
    err = _raises(MalformedInputError, path)
    assert err.line == line - 3 and "'4x9'" in str(err)


def test_unknown_element(tmp_path):
    path, line = _edited(tmp_path, '<location offset="49" length="9"/>', '<location offset="49" length="9"/><loc/>')
    err = _raises(MalformedInputError, path)
    assert err.line == line and "<loc>" in str(err)


def test_node_pointing_nowhere(tmp_path):
    path, line = _edited(tmp_path, '<node refid="2" role="role2"/>', '<node refid="9" role="role2"/>', source=EVERY_XML)
    err = _raises(MalformedInputError, path)
    assert err.record == "1" and "'9'" in str(err)


def test_concept_relation_without_mention(tmp_path):
    path, line = _edited(tmp_path, '<infon key="Chemical">D008750</infon>', '<infon key="Chemical">D999999</infon>')
    err = _raises(MalformedInputError, path)
    assert err.record == "227508" and err.line == line - 2 and "D999999" in str(err)


def test_malformed_json_names_the_line(tmp_path):
    path, line = _edited(tmp_path, '"offset": 27,', '"offset": 27', source=EVERY_JSON, name="bad.json")
    err = _raises(MalformedInputError, path, read_bioc_json)
    assert err.line == line + 1


def test_json_offset_mismatch_names_the_document(tmp_path):
    path, _ = _edited(tmp_path, '"offset": 28,', '"offset": 29,', source=EVERY_JSON, name="bad.json")
    err = _raises(OffsetMismatchError, path, read_bioc_json)
    assert err.record == "2" and "record 2" in str(err)


def test_json_lines_errors_name_the_line(tmp_path):
    lines = [json.dumps(d) for d in json.loads(EVERY_JSON.read_text(encoding="utf-8"))["documents"]]
    path = tmp_path / "docs.jsonl"
    path.write_text(lines[0] + "\n" + lines[1][:-5] + "\n", encoding="utf-8")
    err = _raises(MalformedInputError, path, read_bioc_json)
    assert err.line == 2
