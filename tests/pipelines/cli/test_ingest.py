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


def test_cli_rerun_after_a_killed_run_repairs_instead_of_nothing_to_do(
    tmp_path: Path, prefect_harness: None, capsys: pytest.CaptureFixture
) -> None:
    """`biomed ingest` killed (SIGKILL to its process group: the command, Prefect's server, any
    reader child) inside remove_documents, the shard renamed and its entry not: the next
    `biomed ingest` must not answer "nothing to do" from the entries; it takes over the lock,
    repairs the manifest and finishes the run."""
    import os
    import signal
    import subprocess
    import sys

    from corpora.dataset.fault_points import FAULT_ENV
    from corpora.dataset.lock import DATASET_LOCK
    from corpora.dataset.store import DatasetStore
    from tests.corpora.dataset.test_fault_points import citation, ingest_run, medline
    from tests.helpers.paths import ROOT

    base = medline(tmp_path / "m1.xml", [citation(11, "First"), citation(12, "Second")])
    update = medline(tmp_path / "m2.xml", [citation(13, "Third")], deletions=(12,))
    out = tmp_path / "ds"
    ingest_run([str(base)], str(out))
    args = ["ingest", str(base), str(update), "--out", str(out), "--no-progress"]
    killed = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        cwd=ROOT,
        env={**os.environ, FAULT_ENV: "after-removal-replace"},
        start_new_session=True,  # the fault point kills its process group: never ours
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    holder = json.loads((out / DATASET_LOCK).read_text())  # left behind by the killed run
    assert holder["command"] == " ".join(["biomed", *args])
    assert json.loads((out / "manifest.json").read_text())["rows"] == 2  # stale: the data now has 1 + 1
    assert cli_main(args) == 0
    assert not capsys.readouterr().out.startswith("nothing to do")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rows"] == 2 == DatasetStore(out).count_rows()  # 11 and 13
    assert sorted(d.document_id for d in DatasetStore(out).iter_documents()) == ["11", "13"]
    assert not (out / DATASET_LOCK).exists()
    assert cli_main(args) == 0
    assert capsys.readouterr().out.startswith("nothing to do: ")


def test_cli_on_duplicate(tmp_path: Path, prefect_harness: None, capsys: pytest.CaptureFixture) -> None:
    src = tmp_path / "dup.PubTator.txt"
    src.write_text("1|t|Aspirin.\n1|a|Fever.\n\n1|t|Aspirin again.\n1|a|Fever again.\n\n")
    assert cli_main(["ingest", str(src), "--out", str(tmp_path / "a"), "--no-progress"]) == 1
    assert "document id 1 appears twice (lines 1 and 4)" in capsys.readouterr().err
    assert cli_main(["ingest", str(src), "--out", str(tmp_path / "b"), "--on-duplicate", "last", "--no-progress"]) == 0
    assert [d.passages[0].text for d in open_dataset(tmp_path / "b").iter_documents()] == ["Aspirin again."]
