"""BioC JSON (and the shared BioC mapping) on hostile input: huge declared offsets, huge lines,
lone surrogates, deep nesting and wrongly typed fields each give the project's own error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpora.errors import DocumentTooLargeError, MalformedInputError
from corpora.formats.bioc_json import read_bioc_json
from corpora.formats.bioc_xml import read_bioc_xml
from corpora.formats.limits import COLLECTION_ENV
from tests.corpora.formats.hostile_inputs import repeated, write_gzip_parts


def _doc(passage: dict) -> dict:
    return {"id": "d1", "infons": {}, "passages": [passage], "annotations": [], "relations": []}


def _write(tmp_path: Path, obj: object, name: str = "c.json") -> Path:
    f = tmp_path / name
    f.write_text(json.dumps(obj), encoding="utf-8")
    return f


def test_passage_offset_of_ten_billion_is_refused_before_padding(tmp_path: Path) -> None:
    """Issue 14.2: a 90-byte JSON asked for 10 GB of spaces."""
    f = _write(tmp_path, {"documents": [_doc({"offset": 10**10, "text": "x"})]})
    assert f.stat().st_size < 150
    with pytest.raises(DocumentTooLargeError, match=r"record d1: passage offset 10,000,000,000 would place text past"):
        list(read_bioc_json(f))


def test_passage_offset_in_xml_too(tmp_path: Path) -> None:
    f = tmp_path / "c.xml"
    f.write_bytes(
        b"<collection><source/><date/><key/><document><id>d1</id><passage><offset>10000000000</offset>"
        b"<text>x</text></passage></document></collection>"
    )
    assert f.stat().st_size < 270
    with pytest.raises(DocumentTooLargeError, match="line 1, record d1: passage offset 10,000,000,000"):
        list(read_bioc_xml(f))


def test_sentence_offset_is_bounded_too(tmp_path: Path) -> None:
    f = _write(tmp_path, {"documents": [_doc({"offset": 0, "sentences": [{"offset": 10**9, "text": "s"}]})]})
    with pytest.raises(DocumentTooLargeError, match="sentence offset 1,000,000,000"):
        list(read_bioc_json(f))


def test_an_offset_within_the_limit_still_pads(tmp_path: Path) -> None:
    (doc,) = read_bioc_json(_write(tmp_path, [_doc({"offset": 5, "text": "x"})]))
    assert doc.text == "     x"


def test_two_gib_json_line_in_a_gzip(tmp_path: Path) -> None:
    line = json.dumps(_doc({"offset": 0, "text": "x"})).encode()
    f = write_gzip_parts(
        tmp_path / "c.jsonl.gz",
        [line + b"\n" + b'{"id": "d2", "passages": [{"offset": 0, "text": "', repeated(b"F", 2048)],
    )
    docs = read_bioc_json(f)
    assert next(docs).text == "x"
    with pytest.raises(DocumentTooLargeError, match="line 2: line 2"):
        next(docs)


def test_a_first_line_that_is_one_huge_document(tmp_path: Path) -> None:
    """Not read as a 256 MB collection: a document object is bounded by the per-document limit."""
    f = write_gzip_parts(
        tmp_path / "one.jsonl.gz", [b'{"id": "d", "passages": [{"offset": 0, "text": "', repeated(b"H", 2048)]
    )
    with pytest.raises(DocumentTooLargeError, match="line 1: line 1 .* per-document limit of 20 MB"):
        list(read_bioc_json(f))


def test_collection_on_one_huge_line_is_bounded_by_the_collection_limit(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(COLLECTION_ENV, "30")
    f = write_gzip_parts(
        tmp_path / "c.json.gz", [b'{"documents": [{"id": "d", "passages": [{"text": "', repeated(b"G", 2048)]
    )
    with pytest.raises(
        DocumentTooLargeError, match=r"the JSON collection .* larger than the JSON collection limit of 30 MB"
    ):
        list(read_bioc_json(f))


@pytest.mark.parametrize("jsonl", [False, True])
def test_lone_surrogate_is_malformed_not_unicode_encode_error(tmp_path: Path, jsonl: bool) -> None:
    """Issue 14.11: the text reached the Parquet writer and failed with UnicodeEncodeError."""
    doc = json.dumps(_doc({"offset": 0, "text": "a\ud800b"}))
    assert "\\ud800" in doc
    f = tmp_path / "s.json"
    f.write_text(doc + "\n" if jsonl else '{"documents": [' + doc + "]}", encoding="utf-8")
    with pytest.raises(MalformedInputError, match=r"lone surrogate \(\\ud800\)"):
        list(read_bioc_json(f))


def test_surrogate_pairs_are_fine(tmp_path: Path) -> None:
    f = _write(tmp_path, [_doc({"offset": 0, "text": "a\U0001f600b"})])  # json.dumps writes \ud83d\ude00
    assert "\\ud83d\\ude00" in f.read_text(encoding="utf-8")
    (doc,) = read_bioc_json(f)
    assert doc.text == "a\U0001f600b"


@pytest.mark.parametrize("jsonl", [False, True])
def test_ten_thousand_deep_nesting(tmp_path: Path, jsonl: bool) -> None:
    deep = "[" * 10_000 + "]" * 10_000
    f = tmp_path / "deep.json"
    body = '{"id": "d", "passages": [], "infons": {"k": ' + deep + "}}"
    f.write_text(body + "\n" if jsonl else '{"documents": [' + body + "]}", encoding="utf-8")
    with pytest.raises(MalformedInputError, match="nested too deeply"):
        list(read_bioc_json(f))


@pytest.mark.parametrize(
    ("passage", "what"),
    [
        ({"offset": 0, "text": 123}, "passage text must be a string, got int 123"),
        ({"offset": 0, "sentences": [{"offset": 0, "text": ["s"]}]}, "sentence text must be a string, got list"),
    ],
)
def test_text_that_is_not_a_string(tmp_path: Path, passage: dict, what: str) -> None:
    with pytest.raises(MalformedInputError, match=what):
        list(read_bioc_json(_write(tmp_path, [_doc(passage)])))


def test_annotation_text_that_is_not_a_string(tmp_path: Path) -> None:
    doc = _doc({"offset": 0, "text": "abc"})
    doc["annotations"] = [{"id": "A1", "infons": {}, "text": 7, "locations": [{"offset": 0, "length": 1}]}]
    with pytest.raises(MalformedInputError, match="annotation A1 text must be a string, got int 7"):
        list(read_bioc_json(_write(tmp_path, [doc])))


def test_schema_infon_that_describes_nothing(tmp_path: Path) -> None:
    doc = _doc({"offset": 0, "text": "abc"})
    doc["infons"] = {"biomed:schema": json.dumps({"tokens": [[0]], "metadata": {"nope": 1}})}
    with pytest.raises(MalformedInputError, match="infon biomed:schema does not describe a document"):
        list(read_bioc_json(_write(tmp_path, [doc])))
