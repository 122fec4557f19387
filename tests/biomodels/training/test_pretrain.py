"""`biomed pretrain`: masked-LM pretraining on bundled text, its model directory (loads in
transformers and fine-tunes with `biomed train`), exact resume with fresh masks, provenance."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import MegatronBertForMaskedLM

from biomodels.training import trainer as T
from biomodels.training.api import train
from biomodels.training.pretrain import pretrain
from biomodels.training.provenance import command_line, git_commit
from corpora.errors import ConfigError
from corpora.formats.textio import sha256_file
from pipelines.cli import main
from tests.helpers.paths import ROOT, SAMPLES

TEXT = [
    SAMPLES / "bc5cdr" / "CDR_train_sample.PubTator.txt",
    SAMPLES / "ncbi-disease" / "NCBI_train_sample.PubTator.txt",
]
TINY = {
    "layers": 2,
    "hidden": 32,
    "heads": 2,
    "vocab_size": 1500,
    "max_length": 64,
    "batch_size": 16,
    "held_out_percent": 10.0,
    "progress": False,
    "plot": False,
    "seed": 3,
}


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrain") / "encoder"
    outcome = pretrain(TEXT, out, {**TINY, "max_steps": 40, "eval_every": 20, "lr": 2e-3}, command="biomed test")
    return out, outcome


def test_pretraining_lowers_held_out_loss_and_writes_a_model_directory(encoder):
    out, outcome = encoder
    history = json.loads((out / "metrics.json").read_text())["history"]
    evals = [row["mlm_loss"] for row in history["eval"]]
    assert len(evals) == 2 and evals[-1] < history["train"][0]["loss"]
    assert outcome.held_out == json.loads((out / "held_out_metrics.json").read_text())
    assert 0 < outcome.held_out["mlm_accuracy"] <= 1
    assert outcome.held_out["perplexity"] == pytest.approx(torch.tensor(outcome.held_out["mlm_loss"]).exp().item())
    meta = json.loads((out / "biomed.json").read_text())
    assert meta["task"] == "mlm" and meta["command"] == "biomed test"
    assert meta["commit"] == git_commit()
    files = {f["path"]: f["sha256"] for f in meta["training_data"]["files"]}
    assert files == {str(p.resolve()): sha256_file(p) for p in TEXT}
    assert meta["data_summary"]["held_out_documents"] >= 1
    assert meta["source_model"]["vocab"]["trained"] is True
    assert meta["result"]["weights"] == "best held-out loss"


def test_saved_encoder_loads_in_transformers_masked_lm(encoder):
    out, _ = encoder
    model, info = MegatronBertForMaskedLM.from_pretrained(str(out), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert json.loads((out / "config.json").read_text())["architectures"] == ["MegatronBertForMaskedLM"]
    saved = load_file(str(out / "model.safetensors"))
    assert torch.equal(model.cls.predictions.bias, saved["cls.predictions.bias"])


def test_fine_tuning_starts_from_the_pretrained_encoder(encoder, tmp_path):
    out, _ = encoder
    pubtator = SAMPLES / "bc5cdr" / "CDR_train_sample.PubTator.txt"
    outcome = train(
        "ner", str(out), [pubtator], None, tmp_path / "ner", {"max_steps": 2, "progress": False, "plot": False}
    )
    meta = json.loads((tmp_path / "ner" / "biomed.json").read_text())
    assert meta["source_model"]["resolved_dir"] == str(out)
    assert meta["new_modules"] == ["classifier"]  # the encoder came from the checkpoint, the head is new
    ner = load_file(str(tmp_path / "ner" / "model.safetensors"))
    enc = load_file(str(out / "model.safetensors"))
    assert ner["bert.embeddings.word_embeddings.weight"].shape == enc["bert.embeddings.word_embeddings.weight"].shape
    assert outcome.global_step == 2


def _killer(at: int):
    def callback(info):
        if info.global_step == at:
            raise KeyboardInterrupt

    return callback


def test_interrupted_pretraining_resumes_to_the_same_weights(tmp_path, monkeypatch):
    settings = {**TINY, "max_steps": 12, "save_every": 4, "eval_every": 100}
    pretrain(TEXT, tmp_path / "a", settings)
    calls = []
    real = T.Trainer.__init__

    def with_killer(self, *args, **kwargs):
        real(self, *args, **kwargs)
        if not calls:
            self.callbacks = (_killer(6),)
        calls.append(1)

    monkeypatch.setattr(T.Trainer, "__init__", with_killer)
    with pytest.raises(KeyboardInterrupt):
        pretrain(TEXT, tmp_path / "b", settings)
    pretrain(TEXT, tmp_path / "b", settings, resume=True)
    a, b = load_file(str(tmp_path / "a" / "model.safetensors")), load_file(str(tmp_path / "b" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_continued_pretraining_defaults_to_a_smaller_learning_rate(encoder, tmp_path):
    out, _ = encoder
    pretrain(TEXT, tmp_path / "dapt", {**TINY, "max_steps": 2, "eval_every": 100}, model=str(out))
    meta = json.loads((tmp_path / "dapt" / "biomed.json").read_text())
    assert meta["config"]["learning_rate"] == 1e-4 and meta["source_model"]["resolved_dir"] == str(out)
    scratch = json.loads((encoder[0] / "biomed.json").read_text())
    assert scratch["config"]["learning_rate"] == 2e-3  # given; 5e-4 is the scratch default


def test_cli_runs_the_same_pretraining(tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(
        ["pretrain", *map(str, TEXT), "--out", str(out), "--layers", "1", "--hidden", "32", "--heads", "2",
         "--vocab-size", "800", "--max-steps", "2", "--max-length", "32", "--no-progress", "--no-plot"]
    )  # fmt: skip
    assert code == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["out_dir"] == str(out) and last["global_step"] == 2 and "mlm_loss" in last["held_out"]
    meta = json.loads((out / "biomed.json").read_text())
    assert meta["config"]["learning_rate"] == 5e-4


def test_bad_inputs_fail_before_training(tmp_path):
    with pytest.raises(ConfigError, match="at least one input"):
        pretrain([], tmp_path / "x")
    with pytest.raises(ConfigError, match="mask_probability"):
        pretrain(TEXT, tmp_path / "x", {"mask_probability": 1.5})


def test_command_line_is_written_as_typed():
    assert command_line(["/venv/bin/biomed", "pretrain", "a b", "--out", "o"]) == "biomed pretrain 'a b' --out o"
    assert git_commit(ROOT) is None or len(git_commit(ROOT).split("+")[0]) == 40
