"""BLUE and BioELECTRA masked sentence files: both layouts, and errors that name the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from biomodels.data.re_features import tokenize_re
from biomodels.data.re_masked_tsv import read_masked_re_tsv
from corpora.errors import MalformedInputError


def test_read_blue_and_bioelectra_files(tmp_path: Path, tokenizer) -> None:
    blue = tmp_path / "dev.tsv"
    blue.write_text(
        "10064839.T50.T56\tBinding of @CHEMICAL$ to @GENE$ and its effects.\tfalse\n"
        "10064839.T51.T57\t@GENE$ is inhibited by @CHEMICAL$ strongly.\tCPR:4\n"
        "10064839.T52.T58\tThe @CHEM-GENE$ complex.\tfalse\n"
        "10064839.T51.T57\t@GENE$ is inhibited by @CHEMICAL$ strongly.\tCPR:3\n",  # a pair with two groups
        encoding="utf-8",
    )
    rows = read_masked_re_tsv(blue)
    assert [r.id for r in rows] == ["10064839.T50.T56", "10064839.T51.T57", "10064839.T52.T58", "10064839.T51.T57"]
    assert [r.label for r in rows] == ["false", "CPR:4", "false", "CPR:3"]
    assert (
        rows[1].text[slice(*rows[1].arg1_span)] == "@CHEMICAL$" and rows[1].text[slice(*rows[1].arg2_span)] == "@GENE$"
    )
    assert rows[1].arg2_span[0] == 0
    assert rows[2].arg1_span == rows[2].arg2_span and rows[2].text[slice(*rows[2].arg1_span)] == "@CHEM-GENE$"
    feats = tokenize_re(rows, tokenizer, {"false": 0, "CPR:4": 1, "CPR:3": 2}, max_length=64)
    assert [f["labels"] for f in feats] == [0, 1, 0, 2]

    bio = tmp_path / "train.tsv"
    bio.write_text(
        "sentence\tlabel\nBC6ENTG inhibitors are BC6ENTC - derived BC6OTHER .\tCPR:4\n"
        "Baseline CHEM , BC6ENTG .\tFalse\n",
        encoding="utf-8",
    )
    rows = read_masked_re_tsv(bio)
    assert [r.id for r in rows] == ["train:2", "train:3"] and [r.label for r in rows] == ["CPR:4", "False"]
    assert rows[0].text[slice(*rows[0].arg1_span)] == "BC6ENTC" and rows[0].arg2_span == (0, 7)
    assert rows[1].arg1_span is None and rows[1].text[slice(*rows[1].arg2_span)] == "BC6ENTG"
    feats = tokenize_re(rows, tokenizer, {"False": 0, "CPR:4": 1}, max_length=64)
    assert len(feats) == 2 and feats[1]["_arg1_token_index"] is None


@pytest.mark.parametrize(
    ("content", "line", "match"),
    [
        ("a\t@CHEMICAL$ x @GENE$\tfalse\nb\tno tab here\n", 2, "columns"),
        ("\t@CHEMICAL$ x @GENE$\tfalse\n", 1, "empty id"),
        ("a\t@CHEMICAL$ x @GENE$\t\n", 1, "empty label"),
        ("a\tno masks at all\tfalse\n", 1, "no argument mask"),
        ("sentence\tlabel\nBC6ENTC x BC6ENTG\tCPR:3\textra\n", 2, "columns"),
    ],
)
def test_read_masked_errors_name_file_and_line(tmp_path: Path, content: str, line: int, match: str) -> None:
    p = tmp_path / "bad.tsv"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(MalformedInputError, match=match) as info:
        read_masked_re_tsv(p)
    assert info.value.path == str(p) and info.value.line == line
    assert f"line {line}" in str(info.value)
