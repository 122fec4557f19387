"""ChemProt original TSV reader on the official 50-abstract sample; expectations come from plain
splits of the raw files here."""

from __future__ import annotations

import json
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from corpora.errors import InputError, MalformedInputError, OffsetMismatchError
from corpora.formats.chemprot import read_chemprot
from corpora.formats.registry import detect_format
from corpora.validation import check_entity_offsets, check_relation_arguments
from tests.helpers.paths import ROOT

SAMPLE_DIR = ROOT / "corpora" / "samples" / "chemprot"
ABSTRACTS = SAMPLE_DIR / "chemprot_sample_abstracts.tsv"


def rows(name: str) -> list[list[str]]:
    text = (SAMPLE_DIR / f"chemprot_sample_{name}.tsv").read_text(encoding="utf-8")
    return [line.split("\t") for line in text.split("\n") if line]


@pytest.fixture(scope="module")
def docs():
    return list(read_chemprot(ABSTRACTS))


def test_documents_and_text_follow_the_abstracts_file(docs) -> None:
    abstracts = rows("abstracts")
    assert [d.id for d in docs] == [r[0] for r in abstracts]
    assert [d.document_id for d in docs] == [r[0] for r in abstracts]
    for doc, (_, title, abstract) in zip(docs, abstracts):
        assert doc.text == title + " " + abstract
        assert [(p.type, p.text) for p in doc.passages] == [("title", title), ("abstract", abstract)]
        assert doc.source.format == "chemprot"


def test_every_entity_matches_its_line_and_selects_its_text(docs) -> None:
    expected: dict[str, set] = defaultdict(set)
    for pmid, tid, etype, start, end, text in rows("entities"):
        expected[pmid].add((tid, etype, int(start), int(end), text))
    by_type = Counter(r[2] for r in rows("entities"))
    assert sum(len(d.entities) for d in docs) == len(rows("entities"))
    assert Counter(e.type for d in docs for e in d.entities) == by_type
    for doc in docs:
        check_entity_offsets(doc, ABSTRACTS)
        text = doc.text
        got = set()
        for ent in doc.entities:
            ((s, e),) = ent.offsets
            assert text[s:e] == ent.text[0]
            got.add((ent.id, ent.type, s, e, ent.text[0]))
        assert got == expected[doc.id]


def test_default_relations_are_the_gold_standard(docs) -> None:
    gold: dict[str, set] = defaultdict(set)
    for pmid, group, a1, a2 in rows("gold_standard"):
        gold[pmid].add((group, a1.split(":")[1], a2.split(":")[1]))
    fine = {(r[0], r[1], r[4].split(":")[1], r[5].split(":")[1]): (r[3], r[2].strip()) for r in rows("relations")}
    assert sum(len(d.relations) for d in docs) == len(rows("gold_standard"))
    for doc in docs:
        check_relation_arguments(doc, ABSTRACTS)
        assert {(r.type, r.arg1_id, r.arg2_id) for r in doc.relations} == gold[doc.id]
        types = {e.id: e.type for e in doc.entities}
        for rel in doc.relations:
            assert types[rel.arg1_id] == "CHEMICAL"
            assert types[rel.arg2_id] in ("GENE-Y", "GENE-N")
        if doc.relations:
            extra = json.loads(doc.metadata.extra)["chemprot"]["relations"]
            assert set(extra) == {r.id for r in doc.relations}
            for rel in doc.relations:
                fine_type, flag = fine[(doc.id, rel.type, rel.arg1_id, rel.arg2_id)]
                assert extra[rel.id] == {"fine_type": fine_type, "eval": flag, "gold_standard": True}
        else:
            assert doc.metadata.extra is None


def test_all_relations_keeps_every_annotated_line() -> None:
    docs = list(read_chemprot(ABSTRACTS, all_relations=True))
    raw = rows("relations")
    assert Counter(r.type for d in docs for r in d.relations) == Counter(r[1] for r in raw)
    flags = Counter()
    gold_flags = 0
    for doc in docs:
        check_relation_arguments(doc, ABSTRACTS)
        for info in json.loads(doc.metadata.extra)["chemprot"]["relations"].values() if doc.relations else []:
            flags[info["eval"]] += 1
            gold_flags += info["gold_standard"]
    assert flags == Counter(r[2].strip() for r in raw)
    assert gold_flags == len(rows("gold_standard"))


def _copy_set(tmp_path: Path, parts=("abstracts", "entities", "relations", "gold_standard")) -> Path:
    for part in parts:
        shutil.copy(SAMPLE_DIR / f"chemprot_sample_{part}.tsv", tmp_path / f"set_{part}.tsv")
    return tmp_path / "set_abstracts.tsv"


def test_optional_siblings(tmp_path: Path) -> None:
    only_entities = _copy_set(tmp_path, ("abstracts", "entities"))
    assert sum(len(d.relations) for d in read_chemprot(only_entities)) == 0
    shutil.copy(SAMPLE_DIR / "chemprot_sample_relations.tsv", tmp_path / "set_relations.tsv")
    # without a gold-standard file, Y-flagged relations of the evaluated groups stand in for it
    evaluated_y = [
        r for r in rows("relations") if r[2] == "Y " and r[1] in {"CPR:3", "CPR:4", "CPR:5", "CPR:6", "CPR:9"}
    ]
    assert sum(len(d.relations) for d in read_chemprot(only_entities)) == len(evaluated_y)
    assert detect_format(only_entities) == "chemprot"


def test_missing_entities_file_is_an_input_error(tmp_path: Path) -> None:
    main = _copy_set(tmp_path, ("abstracts",))
    with pytest.raises(InputError, match="entities file is missing") as info:
        list(read_chemprot(main))
    assert info.value.path == str(tmp_path / "set_entities.tsv")


def _edit_line(path: Path, lineno: int, edit) -> list[str]:
    lines = path.read_text(encoding="utf-8").split("\n")
    cols = lines[lineno - 1].split("\t")
    lines[lineno - 1] = "\t".join(edit(cols))
    path.write_text("\n".join(lines), encoding="utf-8")
    return cols


def test_offset_mismatch_names_file_line_and_pmid(tmp_path: Path) -> None:
    main = _copy_set(tmp_path)
    entities = tmp_path / "set_entities.tsv"
    cols = _edit_line(entities, 7, lambda c: c[:3] + [str(int(c[3]) + 1), str(int(c[4]) + 1)] + c[5:])
    with pytest.raises(OffsetMismatchError) as info:
        list(read_chemprot(main))
    assert (info.value.path, info.value.line, info.value.record) == (str(entities), 7, cols[0])
    assert f"{entities}, line 7, record {cols[0]}" in str(info.value)


def test_offsets_outside_the_text(tmp_path: Path) -> None:
    main = _copy_set(tmp_path)
    entities = tmp_path / "set_entities.tsv"
    _edit_line(entities, 3, lambda c: c[:3] + ["100000", "100003"] + c[5:])
    with pytest.raises(OffsetMismatchError, match="outside the text") as info:
        list(read_chemprot(main))
    assert info.value.line == 3


def test_relation_to_unknown_entity(tmp_path: Path) -> None:
    main = _copy_set(tmp_path)
    gold = tmp_path / "set_gold_standard.tsv"
    _edit_line(gold, 2, lambda c: c[:3] + ["Arg2:T999"])
    # the gold line no longer matches a relations line, so the gold file is the one named
    with pytest.raises(MalformedInputError, match="T999") as info:
        list(read_chemprot(main))
    assert (info.value.path, info.value.line) == (str(gold), 2)


@pytest.mark.parametrize(
    ("part", "lineno", "edit", "words"),
    [
        ("entities", 4, lambda c: c[:5], "6 tab-separated columns"),
        ("entities", 4, lambda c: c[:2] + ["PROTEIN"] + c[3:], "'PROTEIN'"),
        ("entities", 4, lambda c: c[:3] + ["x"] + c[4:], "not integers"),
        ("relations", 5, lambda c: c[:2] + ["maybe"] + c[3:], "evaluation flag"),
        ("relations", 5, lambda c: c[:4] + ["T5"] + c[5:], "Arg1:Tn"),
        ("gold_standard", 6, lambda c: c[:1] + ["CPR"] + c[2:], "CPR:n"),
        ("abstracts", 2, lambda c: c[:2], "3 tab-separated columns"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path: Path, part, lineno, edit, words) -> None:
    main = _copy_set(tmp_path)
    target = tmp_path / f"set_{part}.tsv"
    _edit_line(target, lineno, edit)
    with pytest.raises(MalformedInputError) as info:
        list(read_chemprot(main))
    assert (info.value.path, info.value.line) == (str(target), lineno)
    assert words in str(info.value)


def test_entities_without_an_abstract(tmp_path: Path) -> None:
    main = _copy_set(tmp_path)
    entities = tmp_path / "set_entities.tsv"
    n_lines = len(rows("entities"))
    with open(entities, "a", encoding="utf-8") as fh:
        fh.write("99999999\tT1\tCHEMICAL\t0\t3\tabc\n")
    with pytest.raises(MalformedInputError, match="99999999 has no abstract") as info:
        list(read_chemprot(main))
    assert (info.value.path, info.value.line) == (str(entities), n_lines + 1)


def test_a_sibling_larger_than_the_collection_limit_is_refused_not_indexed(tmp_path: Path, monkeypatch) -> None:
    """The siblings are indexed whole (issue 14: bounded memory per input), so they are bounded whole."""
    from corpora.errors import DocumentTooLargeError
    from corpora.formats.limits import COLLECTION_ENV

    main = _copy_set(tmp_path)
    monkeypatch.setenv(COLLECTION_ENV, "0.01")  # 10,000 bytes; the sample's entities file is larger
    assert (tmp_path / "set_entities.tsv").stat().st_size > 10_000
    with pytest.raises(DocumentTooLargeError, match=r"set_entities\.tsv, line \d+: this ChemProt sibling"):
        list(read_chemprot(main))
