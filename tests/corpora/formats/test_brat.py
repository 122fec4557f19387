"""brat standoff reader on the bundled JNLPBA and bioc-package samples; expectations come from
plain splits of the raw .ann/.txt files here."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from corpora.errors import InputError, MalformedInputError, OffsetMismatchError
from corpora.formats.brat import read_brat
from corpora.formats.registry import detect_format
from corpora.validation import check_entity_offsets, check_relation_arguments
from tests.helpers.paths import ROOT

BRAT = ROOT / "corpora" / "samples" / "brat"
ANN_FILES = sorted(BRAT.glob("*.ann"))


def raw_t_lines(ann: Path) -> list[tuple[str, str, list[list[int]], str]]:
    found = []
    for line in ann.read_text(encoding="utf-8").split("\n"):
        if line.startswith("T"):
            tid, type_spans, text = line.split("\t")
            etype, spans = type_spans.split(" ", 1)
            found.append((tid, etype, [[int(x) for x in frag.split()] for frag in spans.split(";")], text))
    return found


def test_samples_are_all_found() -> None:
    assert len(ANN_FILES) == 9


@pytest.mark.parametrize("ann", ANN_FILES, ids=lambda p: p.name)
def test_every_entity_matches_its_t_line_and_the_txt(ann: Path) -> None:
    txt = ann.with_suffix(".txt").read_text(encoding="utf-8")
    (doc,) = read_brat(ann)
    assert doc.id == doc.document_id == ann.stem
    assert detect_format(ann) == "brat"
    raw = raw_t_lines(ann)
    assert [(e.id, e.type, e.offsets) for e in doc.entities] == [(t, ty, off) for t, ty, off, _ in raw]
    assert Counter(e.type for e in doc.entities) == Counter(ty for _, ty, _, _ in raw)
    check_entity_offsets(doc, ann)
    check_relation_arguments(doc, ann)
    text = doc.text
    for ent, (_, _, offsets, column) in zip(doc.entities, raw):
        frags = [txt[s:e] for s, e in offsets]  # straight from the .txt
        assert ent.text == frags == [text[s:e] for s, e in offsets]
        assert column in (" ".join(frags), "".join(frags))
    # the .txt lines (non-blank) are the passages, at their exact offsets
    lines = [line for line in txt.split("\n") if line.strip()]
    assert [p.text for p in doc.passages] == lines
    for p in doc.passages:
        ((s, e),) = p.offsets
        assert txt[s:e] == p.text
    assert text == txt.replace("\n", " ").rstrip(" ")


def test_jnlpba_files_have_title_and_abstract() -> None:
    for ann in ANN_FILES:
        if ann.stem.isdigit():
            (doc,) = read_brat(ann)
            assert [p.type for p in doc.passages] == ["title", "abstract"]
            assert doc.relations == [] and doc.metadata.extra is None


def test_example1_discontinuous_span_relations_events_and_extras() -> None:
    ann = BRAT / "example1.ann"
    (doc,) = read_brat(ann)
    text = (BRAT / "example1.txt").read_text(encoding="utf-8")
    t1 = doc.entities[0]
    # "T1<TAB>Protein 33 40;41 42<TAB>protein1": two fragments, each selecting its text
    assert (t1.id, t1.type, t1.offsets) == ("T1", "Protein", [[33, 40], [41, 42]])
    assert t1.text == [text[33:40], text[41:42]] == ["protein", "1"]
    assert [p.type for p in doc.passages] == ["text"]
    rels = {(r.id, r.type, r.arg1_id, r.arg2_id) for r in doc.relations}
    assert rels == {("R1", "PPI", "T1", "T2"), ("E1.1", "PPI:Arg1", "T3", "T1"), ("E1.2", "PPI:Arg2", "T3", "T2")}
    extra = json.loads(doc.metadata.extra)["brat"]
    assert extra["attributes"] == [{"id": "A1", "type": "Negation", "target": "E1", "value": None}]
    assert extra["equivalences"] == [{"type": "Equiv", "ids": ["T1", "T2"]}]
    assert extra["notes"] == [
        {"id": "#1", "type": "AnnotatorNotes", "target": "T1", "text": "this annotation is suspect"}
    ]
    assert extra["events"] == [
        {"id": "E1", "type": "PPI", "trigger": "T3", "arguments": [["Arg1", "T1"], ["Arg2", "T2"]]}
    ]


def _pair(tmp_path: Path, text: str, ann: str, stem: str = "doc") -> Path:
    (tmp_path / f"{stem}.txt").write_text(text, encoding="utf-8")
    p = tmp_path / f"{stem}.ann"
    p.write_text(ann, encoding="utf-8")
    return p


def test_normalization_nested_event_and_line_break_inside_a_span(tmp_path: Path) -> None:
    text = "IL-2 title\nIL-2 binds its receptor and activates T cells.\n"
    ann = (
        "T1\tProtein 0 4\tIL-2\n"
        "T2\tProtein 11 15\tIL-2\n"
        "T3\tBinding 16 21\tbinds\n"
        "T4\tProtein 26 34\treceptor\n"
        "T5\tPositive_regulation 39 48\tactivates\n"
        "T6\tMention 5 15\ttitle IL-2\n"  # crosses the line break: brat writes it as a space
        "E2\tPositive_regulation:T5 Theme:E1 Cause:T2\n"  # forward reference to E1
        "E1\tBinding:T3 Theme:T2 Theme2:T4\n"
        "N1\tReference T1 UniProt:P60568\tIL2_HUMAN\n"
        "M1\tSpeculation E2\n"
        "A2\tConfidence T4 High\n"
    )
    (doc,) = read_brat(_pair(tmp_path, text, ann))
    check_entity_offsets(doc, "doc.ann")
    check_relation_arguments(doc, "doc.ann")
    assert [(n.db_name, n.db_id) for n in doc.entities[0].normalized] == [("UniProt", "P60568")]
    assert doc.entities[5].text == ["title IL-2"]
    rels = [(r.id, r.type, r.arg1_id, r.arg2_id) for r in doc.relations]
    # E2's Theme is the event E1, represented by E1's trigger T3
    assert rels == [
        ("E2.1", "Positive_regulation:Theme", "T5", "T3"),
        ("E2.2", "Positive_regulation:Cause", "T5", "T2"),
        ("E1.1", "Binding:Theme", "T3", "T2"),
        ("E1.2", "Binding:Theme2", "T3", "T4"),
    ]
    attrs = json.loads(doc.metadata.extra)["brat"]["attributes"]
    assert attrs == [
        {"id": "M1", "type": "Speculation", "target": "E2", "value": None},
        {"id": "A2", "type": "Confidence", "target": "T4", "value": "High"},
    ]


def test_empty_ann_gives_a_document_without_annotations(tmp_path: Path) -> None:
    (doc,) = read_brat(_pair(tmp_path, "Just text.\n", ""))
    assert doc.text == "Just text." and doc.entities == [] and doc.relations == []


def test_missing_txt_names_it(tmp_path: Path) -> None:
    shutil.copy(BRAT / "example1.ann", tmp_path / "lonely.ann")
    with pytest.raises(InputError, match="text file is missing") as info:
        list(read_brat(tmp_path / "lonely.ann"))
    assert info.value.path == str(tmp_path / "lonely.txt")


def _copy_with_line(tmp_path: Path, stem: str, lineno: int, new: str) -> Path:
    shutil.copy(BRAT / f"{stem}.txt", tmp_path / f"{stem}.txt")
    lines = (BRAT / f"{stem}.ann").read_text(encoding="utf-8").split("\n")
    lines[lineno - 1] = new
    out = tmp_path / f"{stem}.ann"
    out.write_text("\n".join(lines), encoding="utf-8")
    return out


@pytest.mark.parametrize(
    ("lineno", "new", "words"),
    [
        (3, "T3\tprotein 238 252\tautoantibodies", "select"),  # shifted by one
        (3, "T3\tprotein 237 99999\tautoantibodies", "outside the text"),
        (1, "T1\tprotein 0 12;13 27\tAnti-Ro(SSA)  autoantibodies", "select"),
    ],
)
def test_t_line_with_bad_offsets_names_file_and_line(tmp_path: Path, lineno: int, new: str, words: str) -> None:
    ann = _copy_with_line(tmp_path, "90110496", lineno, new)
    with pytest.raises(OffsetMismatchError) as info:
        list(read_brat(ann))
    assert (info.value.path, info.value.line) == (str(ann), lineno)
    assert f"{ann}, line {lineno}" in str(info.value)
    assert words in str(info.value)


@pytest.mark.parametrize(
    ("lineno", "new", "words"),
    [
        (4, "R1\tPPI Arg1:T1 Arg2:T9", "'T9'"),
        (4, "R1\tPPI Arg1:T1", "two arguments"),
        (5, "E1\tPPI:T7 Arg1:T1", "trigger"),
        (6, "A1\tNegation X1", "'X1'"),
        (2, "T1\tProtein 47 56\tprotein 2", "used twice"),
        (2, "T2\tProtein 47-56\tprotein 2", "not 'Type start end"),
        (2, "Q2\tProtein 47 56\tprotein 2", "not a brat annotation line"),
        (4, "N1\tReference T1 P60568", "db:id"),
    ],
)
def test_malformed_ann_lines_name_file_and_line(tmp_path: Path, lineno: int, new: str, words: str) -> None:
    ann = _copy_with_line(tmp_path, "example1", lineno, new)
    with pytest.raises(MalformedInputError) as info:
        list(read_brat(ann))
    assert (info.value.path, info.value.line) == (str(ann), lineno)
    assert words in str(info.value)


def test_a_last_line_without_newline_is_read_with_a_warning(tmp_path: Path, caplog) -> None:
    """Issue 14.7: `N1 Reference T1 db:P6` cut from `db:P60568` was read silently; now the reader
    says so (a cut line cannot be told from a whole one, and hand-written files end like that)."""
    ann = _pair(tmp_path, "IL-2 binds.\n", "T1\tProtein 0 4\tIL-2\nN1\tReference T1 UniProt:P6")
    with caplog.at_level("WARNING", logger="corpora.formats.brat"):
        (doc,) = read_brat(ann)
    assert doc.entities[0].normalized[0].db_id == "P6"
    assert [r.getMessage() for r in caplog.records] == [
        f"{ann}, line 2: the last line has no newline, so a cut file cannot be told apart; check that it is "
        "whole: 'N1\\tReference T1 UniProt:P6'"
    ]


def test_a_last_t_line_checks_itself(tmp_path: Path, caplog) -> None:
    ann = _pair(tmp_path, "IL-2 binds.\n", "T1\tProtein 0 4\tIL-")
    with pytest.raises(OffsetMismatchError, match="line 1"):
        list(read_brat(ann))
    ann.write_text("T1\tProtein 0 4\tIL-2", encoding="utf-8")
    with caplog.at_level("WARNING", logger="corpora.formats.brat"):
        (doc,) = read_brat(ann)
    assert doc.entities[0].text == ["IL-2"] and caplog.records == []
