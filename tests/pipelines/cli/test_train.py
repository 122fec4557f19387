"""`biomed train --model FILE`: a raw checkpoint converts on the way, with the options its format needs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.cli import main
from tests.helpers import megatron_fixtures as fx
from tests.helpers.paths import SAMPLES

NCBI_DEV = SAMPLES / "ncbi-disease" / "NCBI_devel_sample.PubTator.txt"


@pytest.fixture()
def release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """NGC's zip of a tiny release (args: uncased, erf GeLU; 4 heads) with vocab.txt beside it."""
    monkeypatch.setenv("BIOMODELS_HOME", str(tmp_path / "home"))
    src = fx.save_ngc_release_zip(tmp_path / "dl" / "megatron_bert_345m_v0.1_uncased.zip", fx.make_weights(seed=51))
    fx.write_vocab(tmp_path / "dl" / "vocab.txt")
    return src


def test_train_converts_a_raw_checkpoint_file(release: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A release whose args say everything needs no option beyond --model."""
    out = tmp_path / "ner"
    args = ["train", "ner", "--model", str(release), "--train", str(NCBI_DEV), "--out", str(out)]
    args += ["--max-steps", "2", "--batch-size", "8", "--max-length", "48", "--stride", "8", "--no-progress"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["global_step"] == 2
    meta = json.loads((out / "biomed.json").read_text())
    assert meta["lower_case"] is True and meta["source_model"]["kind"] == "path"
    record = json.loads((Path(meta["source_model"]["resolved_dir"]) / "biomed.json").read_text())
    assert (record["source_layout"], record["gelu"]) == ("megatron-lm (NGC zip)", "erf")
    assert "classifier" in meta["new_modules"]


def test_train_takes_architecture_and_casing_for_a_bare_checkpoint(tmp_path: Path, monkeypatch) -> None:
    """An older release without args: --model-config gives the architecture, --lowercase the casing."""
    monkeypatch.setenv("BIOMODELS_HOME", str(tmp_path / "home"))
    src = fx.save_ngc_release_zip(tmp_path / "old" / "release.zip", fx.make_weights(seed=52), openai_gelu=None)
    fx.write_vocab(tmp_path / "old" / "vocab.txt")
    config = tmp_path / "model.json"
    config.write_text(
        json.dumps(
            {
                "num_layers": fx.LAYERS,
                "hidden_size": fx.HIDDEN,
                "num_attention_heads": fx.HEADS,
                "max_position_embeddings": fx.POSITIONS,
            }
        )
    )
    args = ["train", "ner", "--model", str(src), "--train", str(NCBI_DEV), "--out", str(tmp_path / "ner")]
    args += ["--max-steps", "1", "--batch-size", "8", "--max-length", "48", "--stride", "8", "--no-progress"]
    assert main(args) == 2  # a usage error: neither heads nor casing are in the file
    assert main([*args, "--model-config", str(config), "--lowercase"]) == 0
    record = json.loads((tmp_path / "ner" / "biomed.json").read_text())["source_model"]
    assert json.loads((Path(record["resolved_dir"]) / "biomed.json").read_text())["gelu"] == "tanh"


def test_train_says_what_a_raw_checkpoint_lacks(release: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["train", "ner", "--model", str(release), "--train", str(NCBI_DEV), "--out", str(tmp_path / "x")]
    assert (
        main([*args, "--max-steps", "1", "--preset", "megatron-bert-345m-uncased"]) == 1
    )  # the checkpoint contradicts the preset: a model error
    assert "num_layers=2 but preset megatron-bert-345m-uncased says 24" in capsys.readouterr().err
    assert main([*args, "--max-steps", "1", "--cased"]) == 2  # a usage error
    assert "stated twice, differently" in capsys.readouterr().err
