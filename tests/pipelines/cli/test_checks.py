"""A user's mistake is found before any flow starts: one line on stderr, exit 2, nothing written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pipelines.cli import main
from tests.helpers.paths import SAMPLES

PUBMED = str(SAMPLES / "pubmed" / "pubmed1.xml")


def run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


def fake_model(folder: Path, task: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "biomed.json").write_text(json.dumps({"task": task}))
    (folder / "model.safetensors").write_bytes(b"")
    return folder


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ingest", "no/such/file.xml", "--out", "{tmp}/ds"], "error: input no/such/file.xml not found"),
        (
            ["ingest", PUBMED, "--format", "pubtator", "--out", "{tmp}/ds"],
            f"error: {PUBMED} looks like pubmed-xml, not pubtator (its first bytes); leave out --format",
        ),
        (["ingest", "'{tmp}/*.nothing'", "--out", "{tmp}/ds"], "*.nothing: no such file, folder or matching glob"),
        (["preprocess", "{tmp}/nope", "--out", "{tmp}/pre"], "error: dataset {tmp}/nope not found"),
        (["preprocess", "{tmp}", "--out", "{tmp}/pre"], "is not a dataset folder"),
        (["annotate", PUBMED, "--ner", "{tmp}/nre", "--out", "{tmp}/ann"], "error: --ner {tmp}/nre: no such model"),
        (["annotate", PUBMED, "--ner", "{tmp}/re-model", "--out", "{tmp}/ann"], "holds a relation extraction model"),
        (["annotate", PUBMED, "--ner", "{tmp}/ner-model", "--re", "{tmp}", "--out", "{tmp}/a"], "no readable biomed"),
    ],
)
def test_mistakes_are_one_line_and_exit_2(tmp_path, capsys, argv, message) -> None:
    fake_model(tmp_path / "re-model", "re")
    fake_model(tmp_path / "ner-model", "ner")
    argv = [a.replace("{tmp}", str(tmp_path)).strip("'") for a in argv]
    code, err = run(argv, capsys)
    assert code == 2
    assert message.replace("{tmp}", str(tmp_path)) in err
    assert len(err.splitlines()) == 1
    assert not any((tmp_path / name).exists() for name in ("ds", "pre", "ann", "a"))  # nothing written


def test_output_inside_or_equal_to_the_input_is_refused(tmp_path, capsys) -> None:
    dataset = tmp_path / "ds"
    (dataset / "data").mkdir(parents=True)
    (dataset / "manifest.json").write_text("{}")
    code, err = run(["preprocess", str(dataset), "--out", str(dataset)], capsys)
    assert (code, err) == (2, f"error: --out {dataset} is the input {dataset}; choose another")
    code, err = run(["ingest", str(SAMPLES / "pubmed"), "--out", str(SAMPLES / "pubmed" / "ds")], capsys)
    assert code == 2 and "is inside the input" in err
    assert not (SAMPLES / "pubmed" / "ds").exists()


def test_read_only_or_file_output_is_refused(tmp_path, capsys, monkeypatch) -> None:
    (tmp_path / "a-file").write_text("x")
    code, err = run(["ingest", PUBMED, "--out", str(tmp_path / "a-file" / "ds")], capsys)
    assert (code, err) == (
        2,
        f"error: --out {tmp_path / 'a-file' / 'ds'}: {tmp_path / 'a-file'} is a file, not a folder",
    )
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == locked else real_access(p, mode))
    code, err = run(["ingest", PUBMED, "--out", str(locked / "ds")], capsys)
    assert (code, err) == (2, f"error: --out {locked / 'ds'}: {locked} is not writable")


@pytest.mark.parametrize("command", ["train", "pretrain"])
def test_training_never_replaces_a_model_by_accident(command, tmp_path, capsys) -> None:
    out = fake_model(tmp_path / "ner", "ner")
    argv = [command, *(["ner", "--model", "scratch", "--train"] if command == "train" else []), PUBMED]
    code, err = run([*argv, "--out", str(out), "--max-steps", "1"], capsys)
    assert code == 2
    assert err == (
        f"error: --out {out} already holds a model; pass --resume to continue its training, --overwrite to "
        "write over it, or choose another folder"
    )
    assert (out / "model.safetensors").read_bytes() == b""  # untouched


def test_a_misspelled_preset_or_missing_training_file_is_a_usage_error(tmp_path, capsys) -> None:
    base = ["train", "ner", "--train", PUBMED, "--out", str(tmp_path / "m")]
    code, err = run([*base, "--model", "megatron-bert-345m-uncsed"], capsys)
    assert code == 2 and "did you mean megatron-bert-345m-uncased?" in err
    code, err = run(
        ["train", "ner", "--model", "scratch", "--train", "no/such.tsv", "--out", str(tmp_path / "m")], capsys
    )
    assert (code, err) == (2, "error: --train no/such.tsv: not found")
    code, err = run(["pretrain", "no/such/dataset", "--out", str(tmp_path / "e")], capsys)
    assert (code, err) == (2, "error: input no/such/dataset: not found")
    assert not (tmp_path / "m").exists() and not (tmp_path / "e").exists()


def test_output_that_a_later_run_would_read_as_input_is_refused(tmp_path, capsys) -> None:
    """Issue 14, item 6: --out equal to a dataset (deletions then ignored), inside an input folder, or
    inside the folder an input glob searches (the next run re-reads the dataset's files)."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.xml").write_bytes((SAMPLES / "pubmed" / "pubmed1.xml").read_bytes())
    code, err = run(["ingest", str(raw), "--out", str(raw / "ds")], capsys)
    assert (code, err) == (2, f"error: --out {raw / 'ds'} is inside the input {raw}; choose another")
    code, err = run(["ingest", f"{raw}/*.xml", "--out", str(raw / "ds")], capsys)
    assert (code, err) == (
        2,
        f"error: --out {raw / 'ds'} is inside {raw}, searched by the input glob {raw}/*.xml (the next run would "
        "read the dataset's own files as input); choose a folder outside it",
    )
    code, err = run(["ingest", str(raw / "a.xml"), "--out", str(raw / "a.xml")], capsys)
    assert (code, err) == (2, f"error: --out {raw / 'a.xml'} is the input file {raw / 'a.xml'}; choose another")
    dataset = tmp_path / "ds"
    (dataset / "data").mkdir(parents=True)
    (dataset / "manifest.json").write_text("{}")
    code, err = run(["annotate", str(dataset), "--ner", "default", "--out", str(dataset / "ann")], capsys)
    assert (code, err) == (2, f"error: --out {dataset / 'ann'} is inside the input {dataset}; choose another")
    assert not (raw / "ds").exists() and not (dataset / "ann").exists()
