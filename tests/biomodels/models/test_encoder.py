"""Our encoder against transformers' MegatronBert: the same outputs (padding included, every head,
both attention paths) to 1e-5 in fp32, the same losses over 20 training steps, the same files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import (
    MegatronBertConfig,
    MegatronBertForMaskedLM,
    MegatronBertForQuestionAnswering,
    MegatronBertForSequenceClassification,
    MegatronBertForTokenClassification,
)

from biomodels.models.checkpoint_conversion import convert_checkpoint
from biomodels.models.encoder import MaskedLM, SequenceClassifier, SpanExtractor, TokenClassifier
from tests.helpers import megatron_fixtures as fx

PAIRS = [
    (MegatronBertForTokenClassification, TokenClassifier, 5),
    (MegatronBertForSequenceClassification, SequenceClassifier, 3),
    (MegatronBertForQuestionAnswering, SpanExtractor, 2),
]
TOL = 1e-5


def tiny_config(num_labels: int, act: str = "gelu_pytorch_tanh", dropout: float = 0.1) -> MegatronBertConfig:
    return MegatronBertConfig(
        vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=64, hidden_act=act, num_labels=num_labels, hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )  # fmt: skip


def batch(seed: int = 0, labels: int = 5) -> dict[str, torch.Tensor]:
    """Three rows of 10 ids; rows 2 and 3 padded after 6 and 3 tokens (padding included in the test)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 128, (3, 10), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 6:], mask[2, 3:] = 0, 0
    types = torch.zeros_like(ids)
    types[:, 5:] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def ours_from(hf_model: torch.nn.Module, ours_cls: type, tmp: Path, attention: str) -> torch.nn.Module:
    hf_model.save_pretrained(tmp)
    config = MegatronBertConfig.from_pretrained(tmp)
    config.biomed_attention = attention
    return ours_cls.from_pretrained(tmp, config=config)


def outputs(model: torch.nn.Module, inputs: dict) -> list[torch.Tensor]:
    out = model(**inputs)
    return [
        t for t in (getattr(out, k, None) for k in ("loss", "logits", "start_logits", "end_logits")) if t is not None
    ]


def labelled(inputs: dict, hf_cls: type, num_labels: int, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    if hf_cls is MegatronBertForTokenClassification:
        labels = torch.randint(0, num_labels, inputs["input_ids"].shape, generator=g)
        labels[inputs["attention_mask"] == 0] = -100
        return {**inputs, "labels": labels}
    if hf_cls is MegatronBertForSequenceClassification:
        return {**inputs, "labels": torch.randint(0, num_labels, (3,), generator=g)}
    return {**inputs, "start_positions": torch.tensor([1, 2, 30]), "end_positions": torch.tensor([3, 4, 0])}


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("act", ["gelu_pytorch_tanh", "gelu"])
@pytest.mark.parametrize(("hf_cls", "ours_cls", "num_labels"), PAIRS)
def test_same_outputs_as_transformers(tmp_path, hf_cls, ours_cls, num_labels, act, attention) -> None:
    torch.manual_seed(7)
    hf = hf_cls(tiny_config(num_labels, act)).eval()
    ours = ours_from(hf, ours_cls, tmp_path, attention).eval()
    inputs = labelled(batch(), hf_cls, num_labels)
    with torch.no_grad():
        for a, b in zip(outputs(hf, inputs), outputs(ours, inputs), strict=True):
            torch.testing.assert_close(b, a, atol=TOL, rtol=0)


def test_converted_checkpoint_matches_transformers_and_the_reference(tmp_path) -> None:
    w = fx.make_weights(seed=61)
    src = fx.save_megatron_lm(tmp_path / "ckpt" / "model_optim_rng.pt", w, 2.0)
    fx.write_vocab(tmp_path / "ckpt" / "vocab.txt")
    hf_dir = convert_checkpoint(src, tmp_path / "hf")
    ids, types, mask = fx.sample_inputs()
    ours = TokenClassifier.from_pretrained(hf_dir, num_labels=3).eval()
    hf = MegatronBertForTokenClassification.from_pretrained(hf_dir, num_labels=3).eval()
    with torch.no_grad():
        hidden = ours.bert(ids, mask, types).last_hidden_state
        torch.testing.assert_close(hidden, fx.reference_forward(w, ids, types, mask), atol=TOL, rtol=0)
        hf_hidden = hf.bert(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        torch.testing.assert_close(hidden, hf_hidden, atol=TOL, rtol=0)


@pytest.mark.parametrize(("hf_cls", "ours_cls", "num_labels"), PAIRS)
def test_twenty_training_steps_give_the_same_losses(tmp_path, hf_cls, ours_cls, num_labels) -> None:
    """Same weights, same batches, AdamW: losses within 1e-4 at every step (dropout off: its random
    draws differ between the two attention implementations)."""
    torch.manual_seed(8)
    hf = hf_cls(tiny_config(num_labels, dropout=0.0))
    ours = ours_from(hf, ours_cls, tmp_path, "sdpa")
    losses = {}
    for name, model in (("hf", hf), ("ours", ours)):
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        losses[name] = []
        for step in range(20):
            loss = model(**labelled(batch(seed=step % 4), hf_cls, num_labels, seed=step % 4)).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses[name].append(loss.item())
    assert max(abs(a - b) for a, b in zip(losses["hf"], losses["ours"])) < 1e-4
    assert losses["ours"][-1] < losses["ours"][0]  # it does learn


def test_saved_model_loads_in_transformers_under_its_class_name(tmp_path) -> None:
    torch.manual_seed(9)
    ours = TokenClassifier(tiny_config(5)).eval()
    ours.save_pretrained(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / "config.json").read_text())["architectures"] == [
        "MegatronBertForTokenClassification"
    ]
    from transformers import AutoModelForTokenClassification

    hf = AutoModelForTokenClassification.from_pretrained(tmp_path / "saved").eval()
    inputs = batch()
    with torch.no_grad():
        torch.testing.assert_close(hf(**inputs).logits, ours(**inputs).logits, atol=TOL, rtol=0)


def test_compiled_encoder_gives_the_same_logits(tmp_path) -> None:
    pytest.importorskip("torch._inductor")
    torch.manual_seed(10)
    ours = TokenClassifier(tiny_config(5)).eval()
    inputs = batch()
    with torch.no_grad():
        eager = ours(**inputs).logits
        ours.bert.compile()
        compiled = ours(**inputs).logits
    torch.testing.assert_close(compiled, eager, atol=TOL, rtol=0)
    assert sorted(ours.state_dict()) == sorted(TokenClassifier(tiny_config(5)).state_dict())  # names unchanged


@pytest.mark.parametrize("act", ["gelu_pytorch_tanh", "gelu"])
def test_masked_lm_matches_transformers_on_the_masked_positions(tmp_path, act) -> None:
    """Ours computes vocabulary logits only where a label is set; those rows and the loss equal
    transformers' MegatronBertForMaskedLM (which scores every position) on the same weights."""
    torch.manual_seed(9)
    hf = MegatronBertForMaskedLM(tiny_config(2, act)).eval()
    with torch.no_grad():
        hf.cls.predictions.bias.normal_()  # a non-zero decoder bias, so its tie is checked too
    ours = ours_from(hf, MaskedLM, tmp_path, "sdpa").eval()
    inputs = batch()
    labels = torch.full_like(inputs["input_ids"], -100)
    labels[0, 2], labels[0, 7], labels[1, 4], labels[2, 1] = 5, 9, 77, 3
    with torch.no_grad():
        theirs = hf(**inputs, labels=labels)
        mine = ours(**inputs, labels=labels)
        torch.testing.assert_close(mine.logits, theirs.logits[labels != -100], atol=TOL, rtol=0)
        torch.testing.assert_close(mine.loss, theirs.loss, atol=TOL, rtol=0)
        torch.testing.assert_close(ours(**inputs).logits, theirs.logits, atol=TOL, rtol=0)
