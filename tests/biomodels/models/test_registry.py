"""Presets, the models folder, task-model building and the `biomed models` commands."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from biomodels.models.presets import PRESETS, config_from_file, config_from_preset, pad_vocab_size, scratch_config  # noqa: E402
from biomodels.models.registry import ensure_huggingface, list_models, resolve_model  # noqa: E402
from biomodels.models.task_models import add_marker_tokens, build_model  # noqa: E402
from corpora.errors import ConfigError, ModelError  # noqa: E402
from pipelines.cli import main  # noqa: E402
from tests.helpers import megatron_fixtures as fx


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own models folder: conversions never touch the user's cache."""
    h = tmp_path / "models"
    monkeypatch.setenv("BIOMODELS_HOME", str(h))
    return h


def encoder_output(model, w: fx.TinyWeights) -> torch.Tensor:
    ids, types, mask = fx.sample_inputs()
    with torch.no_grad():
        return model.eval().bert(input_ids=ids, token_type_ids=types, attention_mask=mask).last_hidden_state


# --- presets -------------------------------------------------------------------------------------


def test_named_presets_and_their_configs() -> None:
    from transformers.activations import ACT2FN

    assert set(PRESETS) == {
        "megatron-bert-345m-cased",
        "megatron-bert-345m-uncased",
        "biomegatron-bert-345m-cased",
        "biomegatron-bert-345m-uncased",
        "megatron-bert-cased",
        "megatron-bert-uncased",
    }
    for name, preset in PRESETS.items():
        assert preset.lower_case == name.endswith("-uncased")
        assert preset.custom == (name in {"megatron-bert-cased", "megatron-bert-uncased"})
    assert pad_vocab_size(30522) == 30592 and pad_vocab_size(128) == 128 and pad_vocab_size(129) == 256
    cfg = config_from_preset("biomegatron-bert-345m-uncased")
    got = (
        cfg.num_hidden_layers,
        cfg.hidden_size,
        cfg.num_attention_heads,
        cfg.intermediate_size,
        cfg.max_position_embeddings,
        cfg.type_vocab_size,
        cfg.layer_norm_eps,
        cfg.vocab_size,
    )
    assert got == (24, 1024, 16, 4096, 512, 2, 1e-5, 30592)
    x = torch.linspace(-4, 4, 101)
    tanh_form = 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    erf_form = 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))
    act = ACT2FN[cfg.hidden_act](x)
    assert torch.allclose(act, tanh_form, atol=1e-6)
    assert (act - erf_form).abs().max() > 1e-4  # and it is not the erf GeLU
    with pytest.raises(ConfigError, match="no fixed architecture: give your model.s config file"):
        config_from_preset("megatron-bert-cased", vocab_size=30522)
    with pytest.raises(ConfigError, match="unknown model preset"):
        config_from_preset("biomegatron-1b")


def test_config_from_user_files(tmp_path: Path) -> None:
    nemo_yaml = tmp_path / "model_config.yaml"
    nemo_yaml.write_text(
        "model:\n  num_layers: 3\n  hidden_size: 48\n  num_attention_heads: 6\n"
        "  max_position_embeddings: 256\n  layernorm_epsilon: 1.0e-5\n  make_vocab_size_divisible_by: 64\n"
    )
    cfg = config_from_file(nemo_yaml, vocab_size=100)
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size, cfg.vocab_size) == (
        3,
        48,
        6,
        192,
        128,
    )
    old_json = tmp_path / "bert_config.json"
    old_json.write_text(
        json.dumps({"hidden-size": 64, "num-attention-heads": 4, "num-layers": 2, "max-seq-length": 128})
    )
    cfg = config_from_file(old_json, vocab_size=30522)
    assert (cfg.num_hidden_layers, cfg.max_position_embeddings, cfg.vocab_size) == (2, 128, 30592)
    incomplete = tmp_path / "partial.json"
    incomplete.write_text(json.dumps({"hidden_size": 64}))
    with pytest.raises(ConfigError, match="num_layers, num_heads, max_positions"):
        config_from_file(incomplete, vocab_size=100)


def test_scratch_config() -> None:
    cfg = scratch_config(2, 32, 4, 100)
    assert (cfg.vocab_size, cfg.intermediate_size, cfg.max_position_embeddings, cfg.layer_norm_eps) == (
        128,
        128,
        512,
        1e-5,
    )
    with pytest.raises(ConfigError, match="not a multiple"):
        scratch_config(2, 30, 4, 100)


# --- registry ------------------------------------------------------------------------------------


def test_missing_models_say_what_to_put_where(home: Path) -> None:
    statuses = list_models()
    assert [s.preset for s in statuses] == list(PRESETS)
    assert not any(s.present for s in statuses)
    assert all(s.path == home / s.preset for s in statuses)
    with pytest.raises(ModelError) as err:
        resolve_model("biomegatron-bert-345m-uncased")
    msg = str(err.value)
    for part in ("MegatronBERT.pt", "vocab.txt", str(home / "biomegatron-bert-345m-uncased"), "biomed models convert"):
        assert part in msg
    with pytest.raises(ModelError, match="not a preset name"):
        resolve_model(str(home / "nowhere"))


def test_preset_folder_converted_in_place_on_first_use(home: Path) -> None:
    w = fx.make_weights(seed=21)
    folder = home / "megatron-bert-uncased"
    folder.mkdir(parents=True)
    fx.save_nemo_pt(folder / "MegatronBERT.pt", w)
    fx.write_vocab(folder / "vocab.txt")
    status = {s.preset: s for s in list_models()}["megatron-bert-uncased"]
    assert not status.present  # a custom preset also needs its config file
    (folder / "bert_config.json").write_text(
        json.dumps(
            {
                "hidden-size": fx.HIDDEN,
                "num-attention-heads": fx.HEADS,
                "num-layers": fx.LAYERS,
                "max-seq-length": fx.POSITIONS,
            }
        )
    )
    status = {s.preset: s for s in list_models()}["megatron-bert-uncased"]
    assert (status.present, status.form) == (True, "checkpoint")
    assert resolve_model("megatron-bert-uncased").kind == "megatron-checkpoint"

    model, tokenizer, info = build_model(
        "ner", "megatron-bert-uncased", 3, id2label={0: "O", 1: "B-Disease", 2: "I-Disease"}
    )
    assert info.model_dir == str(folder) and info.lower_case is True
    assert info.new_modules == ["classifier"]
    ref = fx.reference_forward(w, *fx.sample_inputs())
    assert torch.allclose(encoder_output(model, w), ref, atol=1e-5, rtol=0)
    assert model.config.id2label == {0: "O", 1: "B-Disease", 2: "I-Disease"}
    status = {s.preset: s for s in list_models()}["megatron-bert-uncased"]
    assert (status.present, status.form) == (True, "huggingface")
    assert json.loads((folder / "biomed.json").read_text())["preset"] == "megatron-bert-uncased"


def test_outside_checkpoint_converted_once(home: Path, tmp_path: Path) -> None:
    w = fx.make_weights(seed=22)
    src = fx.save_megatron_lm(tmp_path / "run" / "model_optim_rng.pt", w, 3.0)
    fx.write_vocab(tmp_path / "run" / "vocab.txt")
    out, resolved = ensure_huggingface(src)
    assert resolved.kind == "megatron-checkpoint"
    assert out.parent == home / "converted" and out.name.startswith("model_optim_rng-")
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    again, _ = ensure_huggingface(src)
    assert again == out and (out / "model.safetensors").stat().st_mtime_ns == stamp
    assert resolve_model(out).kind == "huggingface"


def _embo_like_dir(path: Path, w: fx.TinyWeights, record_casing: bool = True) -> Path:
    """A HuggingFace folder shaped like the public EMBO conversions: initializer_range 0.2, eps 1e-12."""
    from transformers import MegatronBertConfig, MegatronBertModel

    cfg = MegatronBertConfig(
        vocab_size=fx.PADDED_VOCAB,
        hidden_size=fx.HIDDEN,
        num_hidden_layers=fx.LAYERS,
        num_attention_heads=fx.HEADS,
        intermediate_size=fx.FFN,
        max_position_embeddings=fx.POSITIONS,
        hidden_act="gelu_new",
        initializer_range=0.2,
        layer_norm_eps=1e-12,
    )
    model = MegatronBertModel(cfg)
    model.pooler.dense.weight.data.copy_(w.pooler_w)
    path.mkdir(parents=True)
    model.save_pretrained(str(path))
    fx.write_vocab(path / "vocab.txt")
    if record_casing:
        (path / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    return path


@pytest.mark.parametrize("task, new", [("ner", ["classifier"]), ("re", ["classifier"]), ("qa", ["qa_outputs"])])
def test_new_heads_use_std_002_whatever_the_config_says(tmp_path: Path, task: str, new: list[str]) -> None:
    w = fx.make_weights(seed=23)
    d = _embo_like_dir(tmp_path / "embo", w)
    torch.manual_seed(0)
    model, tokenizer, info = build_model(task, d, 7)
    head = model.qa_outputs if task == "qa" else model.classifier
    assert info.new_modules == new and info.checkpoint_initializer_range == 0.2
    std = head.weight.std().item()
    assert 0.012 < std < 0.028, std  # 0.02, not the config's 0.2
    assert torch.count_nonzero(head.bias) == 0
    assert any("layer_norm_eps" in m for m in info.warnings)
    if task == "re":  # the checkpoint's pooler is loaded, not re-initialised
        assert torch.equal(model.bert.pooler.dense.weight.detach(), w.pooler_w)


def test_missing_pooler_is_initialised_for_re(tmp_path: Path) -> None:
    w = fx.make_weights(seed=24)
    src = fx.save_nemo_archive(tmp_path / "m.nemo", w, megatron_legacy=False)
    _, _, info = build_model("re", src, 5)
    assert info.new_modules == ["classifier"]  # the .nemo has a pooler
    (tmp_path / "flat").mkdir()
    flat = fx.save_nemo_pt(tmp_path / "flat" / "MegatronBERT.pt", w)  # NeMo 1.0 .pt: no pooler
    fx.write_vocab(tmp_path / "flat" / "vocab.txt")
    (tmp_path / "flat" / "model_config.yaml").write_text(
        f"num_layers: {fx.LAYERS}\nhidden_size: {fx.HIDDEN}\nnum_attention_heads: {fx.HEADS}\n"
        f"max_position_embeddings: {fx.POSITIONS}\n"
    )
    from biomodels.models.checkpoint_conversion import convert_checkpoint

    out = convert_checkpoint(
        flat, tmp_path / "flat-hf", preset="megatron-bert-uncased", config=tmp_path / "flat" / "model_config.yaml"
    )
    model, _, info = build_model("re", out, 5)
    assert info.new_modules == ["bert.pooler.dense", "classifier"]
    assert 0.012 < model.bert.pooler.dense.weight.std().item() < 0.028


def test_casing_never_guessed(tmp_path: Path) -> None:
    d = _embo_like_dir(tmp_path / "embo", fx.make_weights(seed=25), record_casing=False)
    with pytest.raises(ConfigError, match="lower-cased"):
        build_model("ner", d, 3)
    _, tokenizer, info = build_model("ner", d, 3, lower_case=False)
    assert info.lower_case is False and tokenizer.tokenize("Gene")[0] == "[UNK]"


def test_not_a_megatron_folder(tmp_path: Path) -> None:
    d = tmp_path / "bert"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (d / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelError, match="expected 'megatron-bert'"):
        resolve_model(d)


def test_scratch_model_and_marker_tokens(tmp_path: Path) -> None:
    vocab = fx.write_vocab(tmp_path / "vocab.txt")
    with pytest.raises(ConfigError, match="vocabulary"):
        build_model("re", "scratch", 4, scratch_config=scratch_config(2, 32, 4, 100))
    model, tok, info = build_model(
        "re", "scratch", 4, scratch_config=scratch_config(2, 32, 4, 100, max_positions=64), vocab=vocab, lower_case=True
    )
    assert model.get_input_embeddings().weight.shape == (128, 32) and len(tok) == 100
    ids = add_marker_tokens(model, tok, ["[E1]", "[/E1]", "[E2]", "[/E2]"])
    assert ids == [100, 101, 102, 103]
    assert model.get_input_embeddings().weight.shape[0] == 128  # fits in the padding rows
    enc = tok("[E1] Gene [/E1] binds [E2] protein [/E2]")
    assert tok.convert_ids_to_tokens(enc["input_ids"])[:4] == ["[CLS]", "[E1]", "gene", "[/E1]"]
    assert add_marker_tokens(model, tok, ["[E1]"]) == [100]  # already there: nothing added
    more = [f"[M{i}]" for i in range(30)]
    add_marker_tokens(model, tok, more)
    assert len(tok) == 134 and model.get_input_embeddings().weight.shape[0] == 256
    logits = model(**tok(["[E1] gene [/E1]", "[M29] cell"], padding=True, return_tensors="pt")).logits
    assert logits.shape == (2, 4)


# --- CLI -----------------------------------------------------------------------------------------


def test_cli_models_list_and_convert(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    for name in PRESETS:
        assert name in out
    assert out.count("missing") == len(PRESETS)

    w = fx.make_weights(seed=26)
    src = fx.save_megatron_lm(tmp_path / "ck" / "model_optim_rng.pt", w, 1.0)
    fx.write_vocab(tmp_path / "ck" / "vocab.txt")
    dst = home / "megatron-bert-uncased"
    assert main(["models", "convert", str(src), str(dst), "--checkpoint-version", "1.0"]) == 0
    assert "checkpoint_version 1.0" in capsys.readouterr().out
    from transformers import MegatronBertModel

    model = MegatronBertModel.from_pretrained(str(dst)).eval()
    ids, types, mask = fx.sample_inputs()
    with torch.no_grad():
        got = model(input_ids=ids, token_type_ids=types, attention_mask=mask).last_hidden_state
    assert torch.allclose(got, fx.reference_forward(w, ids, types, mask), atol=1e-5, rtol=0)
    assert main(["models", "list"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("megatron-bert-uncased "))
    assert "present (huggingface)" in line
    # a preset that does not fit the checkpoint fails with exit code 1 and a message naming it
    assert main(["models", "convert", str(src), str(tmp_path / "x"), "--preset", "megatron-bert-345m-uncased"]) == 1
    assert "num_layers=2 but preset megatron-bert-345m-uncased says 24" in capsys.readouterr().err


def test_ngc_zip_in_a_preset_folder_is_present_and_converts_on_first_use(home: Path) -> None:
    w = fx.make_weights(seed=41)
    folder = home / "megatron-bert-uncased"
    fx.save_ngc_release_zip(folder / "megatron_bert_345m_v0.1_uncased.zip", w)
    fx.write_vocab(folder / "vocab.txt")
    (folder / "bert_config.json").write_text(
        json.dumps(
            {
                "hidden_size": fx.HIDDEN,
                "num_attention_heads": fx.HEADS,
                "num_layers": fx.LAYERS,
                "max_position_embeddings": fx.POSITIONS,
            }
        )
    )
    status = {s.preset: s for s in list_models()}["megatron-bert-uncased"]
    assert (status.present, status.form) == (True, "checkpoint")
    assert "megatron_bert_345m_v0.1_uncased.zip" in status.files
    out, resolved = ensure_huggingface("megatron-bert-uncased")
    assert out == folder and resolved.path.suffix == ".zip"
    assert json.loads((folder / "biomed.json").read_text())["source_layout"] == "megatron-lm (NGC zip)"


def test_cased_345m_presets_pad_the_cased_bert_vocabulary() -> None:
    for name in ("megatron-bert-345m-cased", "biomegatron-bert-345m-cased"):
        assert (PRESETS[name].vocab_size, PRESETS[name].padded_vocab_size) == (28996, 29056)
    for name in ("megatron-bert-345m-uncased", "biomegatron-bert-345m-uncased"):
        assert (PRESETS[name].vocab_size, PRESETS[name].padded_vocab_size) == (30522, 30592)
    assert config_from_preset("megatron-bert-345m-cased").vocab_size == 29056
