"""PubTator reader/writer on the bundled NCBI-disease and BC5CDR samples, checked against the raw lines."""

from __future__ import annotations

import gzip
import io
import json
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from corpora.errors import EncodingError, MalformedInputError, OffsetMismatchError
from corpora.formats.pubtator import read_pubtator, write_pubtator
from corpora.schema import Normalization
from corpora.validation import check_relation_arguments
from tests.helpers.paths import ROOT

SAMPLES = ROOT / "corpora" / "samples"
FILES = [
    SAMPLES / "ncbi-disease" / "NCBI_train_sample.PubTator.txt",
    SAMPLES / "ncbi-disease" / "NCBI_devel_sample.PubTator.txt",
    SAMPLES / "bc5cdr" / "CDR_train_sample.PubTator.txt",
    SAMPLES / "bc5cdr" / "CDR_dev_sample.PubTator.txt",
]
NCBI_TRAIN, NCBI_DEVEL, CDR_TRAIN, CDR_DEV = FILES


def raw_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")


def raw_mentions(path: Path) -> list[list[str]]:
    """Mention lines parsed independently: tab columns whose second column is an integer."""
    return [cols for cols in (ln.split("\t") for ln in raw_lines(path)) if len(cols) >= 6 and cols[1].isdigit()]


def raw_relations(path: Path) -> list[list[str]]:
    return [cols for cols in (ln.split("\t") for ln in raw_lines(path)) if len(cols) == 4 and not cols[1].isdigit()]


def without_source(docs):
    return [replace(d, source=None) for d in docs]


@pytest.fixture(scope="module")
def parsed():
    return {path: list(read_pubtator(path)) for path in FILES}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_entity_span_selects_its_text(parsed, path):
    for doc in parsed[path]:
        text = doc.text
        for ent in doc.entities:
            assert len(ent.offsets) == len(ent.text) == 1
            for (start, end), expected in zip(ent.offsets, ent.text):
                assert text[start:end] == expected, (doc.document_id, ent.id)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_counts_match_raw_file(parsed, path):
    docs = parsed[path]
    titles = [ln for ln in raw_lines(path) if re.match(r"^[^\t|]+\|t\|", ln)]
    assert len(docs) == len(titles)
    assert [d.document_id for d in docs] == [ln.split("|", 1)[0] for ln in titles]
    assert Counter(e.type for d in docs for e in d.entities) == Counter(cols[4] for cols in raw_mentions(path))
    assert sum(len(d.relations) for d in docs) == len(raw_relations(path))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_mentions_and_text_equal_raw_columns(parsed, path):
    docs = parsed[path]
    got = [(d.document_id, e.offsets[0][0], e.offsets[0][1], e.text[0], e.type) for d in docs for e in d.entities]
    want = [(c[0], int(c[1]), int(c[2]), c[3], c[4]) for c in raw_mentions(path)]
    assert got == want
    lines = raw_lines(path)
    for doc in docs:
        title = next(ln for ln in lines if ln.startswith(f"{doc.document_id}|t|"))[len(doc.document_id) + 3 :]
        abstract = next(ln for ln in lines if ln.startswith(f"{doc.document_id}|a|"))[len(doc.document_id) + 3 :]
        assert doc.text == title + " " + abstract
        assert [(p.type, p.text, p.offsets) for p in doc.passages] == [
            ("title", title, [[0, len(title)]]),
            ("abstract", abstract, [[len(title) + 1, len(title) + 1 + len(abstract)]]),
        ]
        assert doc.source.format == "pubtator" and doc.source.path == str(path) and len(doc.source.sha256) == 64


def test_composite_and_prefixed_ids_become_several_normalizations(parsed):
    by_id = {d.document_id: d for d in parsed[NCBI_TRAIN]}
    ents = {(e.offsets[0][0], e.offsets[0][1]): e for e in by_id["10192393"].entities}
    # raw line: 10192393 670 698 colon and some other cancers CompositeMention D003110|D009369
    assert ents[(670, 698)].normalized == [Normalization("MESH", "D003110"), Normalization("MESH", "D009369")]
    # raw line: 10323252 170 207 X-linked recessive muscular dystrophy DiseaseClass D040181+D009136
    plus = next(e for e in by_id["10323252"].entities if e.offsets == [[170, 207]])
    assert plus.normalized == [Normalization("MESH", "D040181"), Normalization("MESH", "D009136")]
    # raw line: 100562 0 58 Familial deficiency ... SpecificDisease OMIM:610102
    omim = next(e for e in by_id["100562"].entities if e.offsets == [[0, 58]])
    assert omim.normalized == [Normalization("OMIM", "610102")]
    # BC5CDR -1 means no id: raw line 227508 244 252 nalozone Chemical -1
    cdr = {d.document_id: d for d in parsed[CDR_TRAIN]}
    nalozone = next(e for e in cdr["227508"].entities if e.offsets == [[244, 252]])
    assert nalozone.text == ["nalozone"] and nalozone.normalized == []


def test_ids_column_count_matches_normalizations(parsed):
    """Every id column of every sample gives one normalization per id (independent split)."""
    for path in FILES:
        ents = [e for d in parsed[path] for e in d.entities]
        for cols, ent in zip(raw_mentions(path), ents):
            ids = [i.strip() for i in re.split(r"[|+]", cols[5]) if i.strip() != "-1"]
            assert [n.db_id if n.db_name != "OMIM" else f"OMIM:{n.db_id}" for n in ent.normalized] == ids


def test_cid_relations_anchor_on_first_mention_of_each_concept(parsed):
    for path in (CDR_TRAIN, CDR_DEV):
        docs = {d.document_id: d for d in parsed[path]}
        mentions = raw_mentions(path)
        rels = raw_relations(path)
        assert rels and all(r[1] == "CID" for r in rels)
        seen: Counter[str] = Counter()
        for pmid, rtype, chem, dis in rels:
            doc = docs[pmid]
            rel = doc.relations[seen[pmid]]
            seen[pmid] += 1
            assert rel.type == "CID" and rel.normalized == [Normalization("MESH", chem), Normalization("MESH", dis)]
            by_id = {e.id: e for e in doc.entities}
            for arg, concept, etype in ((rel.arg1_id, chem, "Chemical"), (rel.arg2_id, dis, "Disease")):
                cands = [
                    (int(c[1]), int(c[2]))
                    for c in mentions
                    if c[0] == pmid and c[4] == etype and concept in re.split(r"[|+]", c[5])
                ]
                assert cands, (pmid, concept)
                assert by_id[arg].offsets == [list(min(cands))]
        for doc in docs.values():
            check_relation_arguments(doc, path)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_write_reproduces_file_and_round_trips(parsed, path, tmp_path):
    out = io.StringIO()
    assert write_pubtator(parsed[path], out) == len(parsed[path])
    assert out.getvalue() == path.read_text(encoding="utf-8")
    back = list(read_pubtator(_write_tmp(out.getvalue(), tmp_path / path.name)))
    assert without_source(back) == without_source(parsed[path])


def test_seventh_column_and_odd_ids_survive(parsed):
    docs = {d.document_id: d for d in parsed[CDR_TRAIN]}
    doc = docs["2234245"]
    extra = json.loads(doc.metadata.extra)["pubtator"]
    comp = next(e for e in doc.entities if e.offsets == [[0, 28]])
    assert comp.text == ["Ocular and auditory toxicity"]
    assert extra["column7"][comp.id] == "Ocular toxicity|auditory toxicity"
    devel = {d.document_id: d for d in parsed[NCBI_DEVEL]}
    # raw id column " D008661" (leading space) keeps its spelling for writing back
    ent = next(e for e in devel["8808605"].entities if e.offsets == [[154, 171]])
    assert ent.normalized == [Normalization("MESH", "D008661")]
    assert json.loads(devel["8808605"].metadata.extra)["pubtator"]["ids"][ent.id] == " D008661"


def test_gzip_and_gzip_writing(tmp_path, parsed):
    gz = tmp_path / "cdr.txt.gz"
    write_pubtator(parsed[CDR_DEV], gz)
    assert gzip.decompress(gz.read_bytes()).decode("utf-8") == CDR_DEV.read_text(encoding="utf-8")
    assert without_source(read_pubtator(gz)) == without_source(parsed[CDR_DEV])


def test_blank_line_tolerance(tmp_path, parsed):
    """A leading empty line (NCBItrainset_corpus.txt) and missing blank lines between documents."""
    text = NCBI_DEVEL.read_text(encoding="utf-8")
    squeezed = "\n" + "\n".join(ln for ln in text.split("\n") if ln) + "\n"
    path = _write_tmp(squeezed, tmp_path / "squeezed.txt")
    docs = list(read_pubtator(path))
    assert without_source(docs) == without_source(parsed[NCBI_DEVEL])
    out = io.StringIO()
    write_pubtator(docs, out)
    assert out.getvalue() == text


def test_trailing_spaces_in_mention_column_are_stripped_when_they_match(tmp_path):
    # NCBI train, PMID 10923035, 711-761 has trailing spaces in its text column; same shape here.
    lines = raw_lines(NCBI_TRAIN)
    i = next(k for k, ln in enumerate(lines) if ln.startswith("10192393\t15\t26\tskin tumour\t"))
    lines[i] = lines[i].replace("\tskin tumour\t", "\tskin tumour  \t")
    path = _write_tmp("\n".join(lines), tmp_path / "pad.txt")
    docs = list(read_pubtator(path))
    ent = docs[0].entities[0]
    assert ent.text == ["skin tumour"] and docs[0].text[15:26] == "skin tumour"
    out = io.StringIO()
    write_pubtator(docs, out)
    assert out.getvalue() == "\n".join(lines)


def test_empty_abstract_still_gets_a_passage(tmp_path):
    path = _write_tmp("123|t|Title here.\n123|a|\n123\t0\t5\tTitle\tThing\t-1\n\n", tmp_path / "empty.txt")
    (doc,) = read_pubtator(path)
    assert [(p.type, p.text, p.offsets) for p in doc.passages] == [
        ("title", "Title here.", [[0, 11]]),
        ("abstract", "", [[12, 12]]),
    ]
    assert doc.entities[0].text == ["Title"]
    out = io.StringIO()
    write_pubtator([doc], out)
    assert out.getvalue() == path.read_text()


# ------------------------------------------------------------------------------------- bad input


def _write_tmp(text: str, path: Path) -> Path:
    assert not path.resolve().is_relative_to(SAMPLES)
    path.write_text(text, encoding="utf-8")
    return path


def _edited(tmp_path: Path, old: str, new: str, source: Path = CDR_TRAIN) -> tuple[Path, int]:
    text = source.read_text(encoding="utf-8")
    assert text.count(old) == 1
    path = tmp_path / "edited.txt"
    path.write_text(text.replace(old, new), encoding="utf-8")
    line = text[: text.index(old)].count("\n") + 1
    return path, line


def _expect(exc_type, path: Path, line: int, *parts: str):
    with pytest.raises(exc_type) as info:
        list(read_pubtator(path))
    msg = str(info.value)
    assert msg.startswith(f"{path}, line {line}"), msg
    assert info.value.line == line
    for part in parts:
        assert part in msg, msg
    return info.value


def test_non_integer_offset(tmp_path):
    path, line = _edited(tmp_path, "227508\t49\t58\tclonidine", "227508\t49x\t58\tclonidine")
    _expect(MalformedInputError, path, line, "record 227508", "integer")


def test_offsets_that_do_not_match_the_text(tmp_path):
    path, line = _edited(tmp_path, "227508\t49\t58\tclonidine", "227508\t48\t57\tclonidine")
    _expect(OffsetMismatchError, path, line, "record 227508", "' clonidin'")


def test_offsets_past_the_end(tmp_path):
    path, line = _edited(tmp_path, "227508\t49\t58\tclonidine", "227508\t49000\t49009\tclonidine")
    _expect(OffsetMismatchError, path, line, "outside")


def test_wrong_column_count(tmp_path):
    path, line = _edited(
        tmp_path, "227508\t49\t58\tclonidine\tChemical\tD003000\n", "227508\t49\t58\tclonidine\tChemical\n"
    )
    _expect(MalformedInputError, path, line, "5 columns")


def test_mention_before_its_title(tmp_path):
    path, line = _edited(
        tmp_path, "354896|t|Lidocaine-induced cardiac asystole.\n", "354896\t0\t9\tLidocaine\tChemical\tD008012\n"
    )
    _expect(MalformedInputError, path, line, "before its document's title", "record 354896")


def test_truncated_mid_line(tmp_path):
    text = CDR_TRAIN.read_text(encoding="utf-8")
    # cut inside the id column: every column is still there, only the missing newline tells
    cut = text.index("227508\t306\t322\talpha-methyldopa\tChemical\tD008750") + len(
        "227508\t306\t322\talpha-methyldopa\tChemical\tD008"
    )
    path = _write_tmp(text[:cut], tmp_path / "cut.txt")
    _expect(MalformedInputError, path, text[:cut].count("\n") + 1, "truncated")


def test_truncated_after_a_title(tmp_path):
    text = CDR_TRAIN.read_text(encoding="utf-8")
    cut = text.index("354896|a|")
    path = _write_tmp(text[:cut], tmp_path / "cut.txt")
    _expect(MalformedInputError, path, text[:cut].count("\n"), "without its abstract", "record 354896")


def test_truncated_in_the_text_column(tmp_path):
    text = CDR_TRAIN.read_text(encoding="utf-8")
    cut = text.index("227508\t306\t322\talpha-methyldopa") + len("227508\t306\t322\talpha")
    path = _write_tmp(text[:cut] + "\n", tmp_path / "cut.txt")
    _expect(MalformedInputError, path, text[:cut].count("\n") + 1, "4 columns")


def test_non_utf8_bytes(tmp_path):
    data = CDR_TRAIN.read_bytes()
    pos = data.index(b"Lidocaine-induced")
    path = tmp_path / "latin1.txt"
    path.write_bytes(data[:pos] + b"\xe9" + data[pos + 1 :])
    _expect(EncodingError, path, data[:pos].count(b"\n") + 1, "UTF-8")


def test_relation_to_a_concept_without_mention(tmp_path):
    path, line = _edited(tmp_path, "227508\tCID\tD008750\tD007022", "227508\tCID\tD999999\tD007022")
    _expect(MalformedInputError, path, line, "D999999", "no mention")
