"""`biomed ingest`: exit codes, reruns that do nothing, the offset-mismatch policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpora.dataset.store import open_dataset, shard_name_for
from pipelines.cli import main as cli_main


def test_cli_ingest_exit_codes_and_rerun(
    samples: Path, tmp_path: Path, prefect_harness: None, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "ds"
    args = [
        "ingest",
        str(samples / "pubmed"),
        str(samples / "bc5cdr/CDR_train_sample.BioC.xml"),
        "--out",
        str(out),
        "--no-progress",
    ]
    assert cli_main(args) == 0
    text = capsys.readouterr().out
    assert "written" in text and str(out) in text
    manifest = (out / "manifest.json").read_text()
    assert "source_sha256" in manifest and "code_version" in manifest
    stamps = {p: p.stat().st_mtime_ns for p in (out / "data").iterdir()}
    assert cli_main(args) == 0
    assert capsys.readouterr().out.startswith("nothing to do: ")  # found before any flow started
    assert {p: p.stat().st_mtime_ns for p in (out / "data").iterdir()} == stamps
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert cli_main(["ingest", str(empty), "--out", str(out), "--no-progress"]) == 1
    assert "empty" in capsys.readouterr().err
    assert (
        cli_main(["ingest", str(tmp_path / "missing.xml"), "--out", str(out)]) == 2
    )  # a usage error, found before any work


def test_cli_offset_mismatch_policy(
    samples: Path, tmp_path: Path, prefect_harness: None, capsys: pytest.CaptureFixture
) -> None:
    bioc = tmp_path / "in" / "cdr.BioC.xml"
    bioc.parent.mkdir()
    raw = (samples / "bc5cdr/CDR_train_sample.BioC.xml").read_text(encoding="utf-8")
    assert raw.count('<location offset="49" length="9"/>') == 1  # "clonidine" of document 227508
    bioc.write_text(
        raw.replace('<location offset="49" length="9"/>', '<location offset="48" length="9"/>'), encoding="utf-8"
    )
    pubtator = samples / "ncbi-disease/NCBI_devel_sample.PubTator.txt"
    out = tmp_path / "ds"
    base = ["ingest", str(bioc), str(pubtator), "--out", str(out), "--no-progress"]

    assert cli_main(base) == 1  # default: the file with the bad annotation fails, the other is written
    err = capsys.readouterr().err
    assert "cdr.BioC.xml" in err and "227508" in err
    assert [p.stem for p in (out / "data").iterdir()] == [shard_name_for(pubtator)]

    assert cli_main([*base, "--on-offset-mismatch", "skip"]) == 0
    assert "1 written" in capsys.readouterr().out  # the PubTator shard is unchanged: not redone
    (doc,) = [d for d in open_dataset(out).iter_documents() if d.document_id == "227508"]
    assert "clonidine" not in [t for e in doc.entities for t in e.text][:2]
    assert json.loads(doc.metadata.extra)["bioc"]["skipped"] == [
        {"id": "1", "text": "clonidine", "offsets": [[48, 57]]}
    ]
    assert cli_main([*base, "--on-offset-mismatch", "skip"]) == 0
    assert capsys.readouterr().out.startswith("nothing to do: 2 input file(s)")

    # back to the strict default: the option is part of the shard's fingerprint, so the file is
    # read again, fails, and the shard written with "skip" stays as it was
    shard = out / "data" / f"{shard_name_for(bioc)}.parquet"
    stamp = shard.stat().st_mtime_ns
    assert cli_main(base) == 1
    assert shard.stat().st_mtime_ns == stamp
