"""Megatron-LM / NeMo -> HuggingFace conversion, checked against an independent forward pass.

Each tiny checkpoint is written in its source's own layout with the fused QKV in the order its
checkpoint_version stores; the converted model's hidden states must equal the reference forward
pass (tests/helpers/megatron_fixtures.py) computed from the original separate Q, K, V to 1e-5.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from biomodels.models.checkpoint_conversion import convert_checkpoint, split_fused_qkv  # noqa: E402
from corpora.errors import ConfigError, ModelError  # noqa: E402
from tests.helpers import megatron_fixtures as fx

TOL = 1e-5


def hidden_states(model_dir: Path) -> torch.Tensor:
    from transformers import MegatronBertModel

    model = MegatronBertModel.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    ids, types, mask = fx.sample_inputs()
    with torch.no_grad():
        return model(input_ids=ids, token_type_ids=types, attention_mask=mask).last_hidden_state


def reference(w: fx.TinyWeights) -> torch.Tensor:
    ids, types, mask = fx.sample_inputs()
    return fx.reference_forward(w, ids, types, mask)


@pytest.mark.parametrize("version", [None, 0, 1.0, 2.0, 3.0])
def test_megatron_lm_versions_match_reference(tmp_path: Path, version: float | None) -> None:
    w = fx.make_weights(seed=11)
    src = fx.save_megatron_lm(tmp_path / "ckpt" / "model_optim_rng.pt", w, version)
    fx.write_vocab(tmp_path / "ckpt" / "vocab.txt")
    out = convert_checkpoint(src, tmp_path / "hf")
    got = hidden_states(out)
    assert got.shape == (2, 12, fx.HIDDEN)
    assert torch.allclose(got, reference(w), atol=TOL, rtol=0), (got - reference(w)).abs().max()
    meta = json.loads((out / "biomed.json").read_text())
    assert meta["checkpoint_version"] == float(version or 0)
    assert meta["source_layout"] == "megatron-lm"
    assert meta["source_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert meta["lower_case"] is True  # from args.tokenizer_type BertWordPieceLowerCase
    assert ("absent" in meta["checkpoint_version_origin"]) == (version is None)


@pytest.mark.parametrize("wrong", [0, 1.0])
def test_wrong_checkpoint_version_gives_wrong_outputs(tmp_path: Path, wrong: float) -> None:
    w = fx.make_weights(seed=12)
    src = fx.save_megatron_lm(tmp_path / "model_optim_rng.pt", w, 2.0)
    fx.write_vocab(tmp_path / "vocab.txt")
    out = convert_checkpoint(src, tmp_path / "hf", checkpoint_version=wrong)
    assert json.loads((out / "biomed.json").read_text())["checkpoint_version_origin"] == "given by the user"
    diff = (hidden_states(out) - reference(w)).abs().max().item()
    assert diff > 1e-2, diff


def test_split_fused_qkv_each_layout() -> None:
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(fx.HIDDEN, fx.HIDDEN, generator=g) for _ in range(3))
    qb, kb, vb = (torch.randn(fx.HIDDEN, generator=g) for _ in range(3))
    for version in (0, 1.0, 2.0, 3.0):
        for fused, parts in (
            (fx.fuse_qkv(q, k, v, version), (q, k, v)),
            (fx.fuse_qkv(qb, kb, vb, version), (qb, kb, vb)),
        ):
            got = split_fused_qkv(fused, version, fx.HEADS)
            for a, b in zip(got, parts):
                assert torch.equal(a, b)
    # the layouts really differ: reading version-2 data as version 1 does not give Q back
    assert not torch.equal(split_fused_qkv(fx.fuse_qkv(q, k, v, 2.0), 1.0, fx.HEADS)[0], q)
    with pytest.raises(ModelError, match="checkpoint_version 0.5"):
        split_fused_qkv(fx.fuse_qkv(q, k, v, 0), 0.5, fx.HEADS)


def test_vocabulary_padding_kept(tmp_path: Path) -> None:
    from transformers import MegatronBertConfig, MegatronBertModel

    w = fx.make_weights(seed=13)
    src = fx.save_megatron_lm(tmp_path / "model_optim_rng.pt", w, 2.0)
    fx.write_vocab(tmp_path / "vocab.txt")
    out = convert_checkpoint(src, tmp_path / "hf")
    assert MegatronBertConfig.from_pretrained(str(out)).vocab_size == fx.PADDED_VOCAB == 128
    emb = MegatronBertModel.from_pretrained(str(out)).get_input_embeddings().weight
    assert torch.equal(emb.detach(), w.word)  # all 128 rows, padding rows included
    lines = (out / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert lines == fx.tiny_vocab()
    meta = json.loads((out / "biomed.json").read_text())
    assert (meta["vocab_size"], meta["padded_vocab_size"]) == (100, 128)
    assert meta["heads"] == {"pooler": True, "lm_head": False, "binary_head": False}


def test_nemo_megatronbert_pt(tmp_path: Path) -> None:
    """Flat NeMo state dict: no version (read as 0, as NeMo did), architecture from the user's config."""
    w = fx.make_weights(seed=14)
    src = fx.save_nemo_pt(tmp_path / "MegatronBERT.pt", w)
    fx.write_vocab(tmp_path / "vocab.txt")
    cfg = tmp_path / "bert_config.json"  # NeMo's old config spelling
    cfg.write_text(
        json.dumps(
            {
                "hidden-size": fx.HIDDEN,
                "num-attention-heads": fx.HEADS,
                "num-layers": fx.LAYERS,
                "max-seq-length": fx.POSITIONS,
            }
        )
    )
    out = convert_checkpoint(src, tmp_path / "hf", preset="megatron-bert-uncased", config=cfg)
    assert torch.allclose(hidden_states(out), reference(w), atol=TOL, rtol=0)
    meta = json.loads((out / "biomed.json").read_text())
    assert (meta["source_layout"], meta["checkpoint_version"], meta["preset"]) == (
        "nemo-pt",
        0.0,
        "megatron-bert-uncased",
    )
    assert meta["heads"]["pooler"] is False


def test_nemo_pt_without_casing_or_heads_is_refused(tmp_path: Path) -> None:
    src = fx.save_nemo_pt(tmp_path / "MegatronBERT.pt", fx.make_weights(seed=15))
    fx.write_vocab(tmp_path / "vocab.txt")
    with pytest.raises(ConfigError, match="lower-cased"):  # a flat state dict records no casing either
        convert_checkpoint(src, tmp_path / "hf")
    with pytest.raises(ConfigError, match="attention heads"):
        convert_checkpoint(src, tmp_path / "hf", preset="megatron-bert-uncased")


@pytest.mark.parametrize("legacy", [False, True])
def test_nemo_archive(tmp_path: Path, legacy: bool) -> None:
    from transformers import MegatronBertForPreTraining

    w = fx.make_weights(seed=16)
    src = fx.save_nemo_archive(tmp_path / "biomegatron_tiny.nemo", w, megatron_legacy=legacy, lower_case=False)
    out = convert_checkpoint(src, tmp_path / "hf")  # vocab, casing and layout all come from the archive
    assert torch.allclose(hidden_states(out), reference(w), atol=TOL, rtol=0)
    meta = json.loads((out / "biomed.json").read_text())
    assert meta["checkpoint_version"] == (0.0 if legacy else 2.0)
    assert meta["lower_case"] is False
    assert (out / "vocab.txt").read_text(encoding="utf-8").splitlines() == fx.tiny_vocab()
    assert meta["heads"] == {"pooler": True, "lm_head": True, "binary_head": True}
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architectures"] == ["MegatronBertForPreTraining"]
    assert cfg["max_position_embeddings"] == fx.POSITIONS  # not encoder_seq_length (16)
    full = MegatronBertForPreTraining.from_pretrained(str(out))
    assert torch.equal(full.cls.predictions.transform.dense.weight.detach(), w.heads["lm_head.dense.weight"])
    assert torch.equal(full.cls.predictions.transform.LayerNorm.weight.detach(), w.heads["lm_head.layernorm.weight"])
    assert torch.equal(full.cls.predictions.bias.detach(), w.heads["lm_head.bias"])
    assert torch.equal(full.cls.seq_relationship.weight.detach(), w.heads["binary_head.weight"])


def test_megatron_heads_converted(tmp_path: Path) -> None:
    w = fx.make_weights(seed=17)
    src = fx.save_megatron_lm(tmp_path / "model_optim_rng.pt", w, 3.0, with_heads=True)
    fx.write_vocab(tmp_path / "vocab.txt")
    out = convert_checkpoint(src, tmp_path / "hf")
    assert json.loads((out / "config.json").read_text())["architectures"] == ["MegatronBertForPreTraining"]
    assert torch.allclose(hidden_states(out), reference(w), atol=TOL, rtol=0)


def test_model_parallel_folder(tmp_path: Path) -> None:
    w = fx.make_weights(seed=18)
    root = tmp_path / "megatron_bert_345m"
    fx.save_megatron_lm(root / "release" / "mp_rank_00" / "model_optim_rng.pt", w, 2.0)
    (root / "latest_checkpointed_iteration.txt").write_text("release\n")
    fx.write_vocab(root / "vocab.txt")  # found by walking up from mp_rank_00/
    out = convert_checkpoint(root, tmp_path / "hf")
    assert torch.allclose(hidden_states(out), reference(w), atol=TOL, rtol=0)
    fx.save_megatron_lm(root / "release" / "mp_rank_01" / "model_optim_rng.pt", w, 2.0)
    with pytest.raises(ModelError, match="2 model-parallel ranks"):
        convert_checkpoint(root, tmp_path / "hf2")


def test_preset_architecture_mismatch_is_an_error(tmp_path: Path) -> None:
    src = fx.save_megatron_lm(tmp_path / "model_optim_rng.pt", fx.make_weights(), 2.0)
    fx.write_vocab(tmp_path / "vocab.txt")
    with pytest.raises(ModelError, match="num_layers=2 but preset biomegatron-bert-345m-uncased says 24"):
        convert_checkpoint(src, tmp_path / "hf", preset="biomegatron-bert-345m-uncased")


def test_casing_conflict_and_missing_vocab(tmp_path: Path) -> None:
    src = fx.save_megatron_lm(tmp_path / "model_optim_rng.pt", fx.make_weights(), 2.0, lower_case=True)
    with pytest.raises(ModelError, match="vocab.txt"):
        convert_checkpoint(src, tmp_path / "hf")
    fx.write_vocab(tmp_path / "vocab.txt")
    with pytest.raises(ConfigError, match="tokenizer: uncased; preset megatron-bert-cased: cased"):
        convert_checkpoint(src, tmp_path / "hf", preset="megatron-bert-cased")


def test_not_a_checkpoint(tmp_path: Path) -> None:
    bad = tmp_path / "model_optim_rng.pt"
    torch.save({"weight": torch.zeros(2)}, bad)
    with pytest.raises(ModelError, match="word_embeddings"):
        convert_checkpoint(bad, tmp_path / "hf")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a pickle")
    with pytest.raises(ModelError, match="cannot read as a PyTorch checkpoint"):
        convert_checkpoint(junk, tmp_path / "hf")


def test_sources_disagreeing_on_heads(tmp_path: Path) -> None:
    """Heads cannot be read off the tensors, so a config that contradicts the checkpoint's args is refused."""
    src = fx.save_megatron_lm(tmp_path / "model_optim_rng.pt", fx.make_weights(), 2.0)
    fx.write_vocab(tmp_path / "vocab.txt")
    cfg = tmp_path / "cfg.json"
    cfg.write_text(
        json.dumps(
            {
                "num_layers": fx.LAYERS,
                "hidden_size": fx.HIDDEN,
                "num_attention_heads": 8,
                "max_position_embeddings": fx.POSITIONS,
                "ffn_hidden_size": fx.FFN,
            }
        )
    )
    with pytest.raises(ModelError, match="disagree on the number of attention heads"):
        convert_checkpoint(src, tmp_path / "hf", config=cfg)


# ------------------------------------------------------------------ public release layouts, as downloaded


def reference_fp16(w: fx.TinyWeights, gelu: str) -> torch.Tensor:
    ids, types, mask = fx.sample_inputs()
    return fx.reference_forward(fx.w_as_fp16(w), ids, types, mask, gelu=gelu)


def tiny_config(path: Path) -> Path:
    path.write_text(
        json.dumps(
            {
                "num_layers": fx.LAYERS,
                "hidden_size": fx.HIDDEN,
                "num_attention_heads": fx.HEADS,
                "max_position_embeddings": fx.POSITIONS,
            }
        )
    )
    return path


def test_ngc_release_zip_as_downloaded(tmp_path: Path) -> None:
    """NGC's zip: version 0 (absent), fp16, legacy serialization, args saying the erf GeLU."""
    w = fx.make_weights(seed=31)
    src = fx.save_ngc_release_zip(tmp_path / "megatron_bert_345m_v0.1_uncased.zip", w)
    fx.write_vocab(tmp_path / "vocab.txt")
    out = convert_checkpoint(src, tmp_path / "hf")
    got = hidden_states(out)
    assert torch.allclose(got, reference_fp16(w, "erf"), atol=TOL, rtol=0)
    assert not torch.allclose(got, reference_fp16(w, "tanh"), atol=1e-4, rtol=0)  # the two forms differ here
    meta = json.loads((out / "biomed.json").read_text())
    assert (meta["source_layout"], meta["source_member"]) == (
        "megatron-lm (NGC zip)",
        "release/mp_rank_00/model_optim_rng.pt",
    )
    assert meta["checkpoint_version"] == 0.0 and "absent" in meta["checkpoint_version_origin"]
    assert meta["gelu"] == "erf" and "openai_gelu=False and no bias_gelu_fusion" in meta["gelu_origin"]
    assert json.loads((out / "config.json").read_text())["hidden_act"] == "gelu"
    # --gelu overrides what the args say, and says so
    forced = convert_checkpoint(src, tmp_path / "hf-tanh", gelu="tanh")
    assert torch.allclose(hidden_states(forced), reference_fp16(w, "tanh"), atol=TOL, rtol=0)
    assert json.loads((forced / "biomed.json").read_text())["gelu_origin"] == "--gelu tanh given by the user"


def test_release_without_args_is_tanh_and_needs_casing(tmp_path: Path) -> None:
    w = fx.make_weights(seed=32)
    src = fx.save_ngc_release_zip(tmp_path / "old.zip", w, openai_gelu=None)
    fx.write_vocab(tmp_path / "vocab.txt")
    with pytest.raises(ConfigError, match="--lowercase or --cased"):
        convert_checkpoint(src, tmp_path / "hf", config=tiny_config(tmp_path / "cfg.json"))
    out = convert_checkpoint(src, tmp_path / "hf", config=tmp_path / "cfg.json", lower_case=True)
    assert torch.allclose(hidden_states(out), reference_fp16(w, "tanh"), atol=TOL, rtol=0)
    assert "no args" in json.loads((out / "biomed.json").read_text())["gelu_origin"]


def test_biomegatron_megatronbert_pt(tmp_path: Path) -> None:
    """BioMegatron's NGC file: top-level `model`, encoder only, fp16; no pooler recorded as pretrained."""
    w = fx.make_weights(seed=33)
    src = fx.save_biomegatron_pt(tmp_path / "MegatronBERT.pt", w)
    fx.write_vocab(tmp_path / "vocab.txt")
    out = convert_checkpoint(
        src, tmp_path / "hf", preset="megatron-bert-uncased", config=tiny_config(tmp_path / "c.json")
    )
    assert torch.allclose(hidden_states(out), reference_fp16(w, "tanh"), atol=TOL, rtol=0)
    meta = json.loads((out / "biomed.json").read_text())
    assert meta["heads"] == {"pooler": False, "lm_head": False, "binary_head": False}
    assert json.loads((out / "config.json").read_text())["architectures"] == ["MegatronBertModel"]


@pytest.mark.parametrize("version", [2.0, 3.0, 0])
def test_nemo_1_0_task_archive_reads_its_version_file(tmp_path: Path, version: float) -> None:
    w = fx.make_weights(seed=34)
    src = fx.save_nemo_task_archive(tmp_path / "ner_model.nemo", w, version)
    out = convert_checkpoint(src, tmp_path / "hf")  # architecture, casing, vocab and version from the archive
    assert torch.allclose(hidden_states(out), reference(w), atol=TOL, rtol=0)
    meta = json.loads((out / "biomed.json").read_text())
    assert meta["checkpoint_version"] == float(version)
    assert meta["checkpoint_version_origin"].endswith("_megatron_checkpoint_version.json in the .nemo archive")
    assert meta["lower_case"] is True


def test_nemo_archive_with_untrained_heads_marks_them_new(tmp_path: Path) -> None:
    """A .nemo NeMo made from BioMegatron's file: its pooler and heads are NeMo's random initialisation."""
    from biomodels.models.task_models import build_model

    w = fx.make_weights(seed=35)
    src = fx.save_nemo_archive(tmp_path / "bio.nemo", w, megatron_legacy=False, lower_case=True, untrained_heads=True)
    out = convert_checkpoint(src, tmp_path / "hf")
    assert torch.allclose(hidden_states(out), reference(w), atol=TOL, rtol=0)
    meta = json.loads((out / "biomed.json").read_text())
    assert meta["untrained_heads_dropped"] == ["pooler", "lm_head", "binary_head"]
    assert meta["heads"] == {"pooler": False, "lm_head": False, "binary_head": False}
    _, _, info = build_model("re", out, 2)  # RE classifies from the pooler: new here, not pretrained
    assert any("pooler" in name for name in info.new_modules)
