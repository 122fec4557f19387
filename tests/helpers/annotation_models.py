"""Tiny model directories for the inference and spaCy component tests, built the way `biomed train`
writes them (`biomodels.models.model_dir.save_model_dir`), with random weights.

The classifier weights are drawn with std 1.0 instead of 0.02 so that a random model still makes
confident, varied predictions (logits several units apart): tests that compare two code paths then
compare clear decisions rather than near-ties that float rounding could flip.
"""

from __future__ import annotations

from pathlib import Path

import torch

from biomodels.data.re_marking import marker_tokens
from biomodels.models.model_dir import save_model_dir
from biomodels.models.presets import scratch_config
from biomodels.models.task_models import add_marker_tokens, build_model
from biomodels.models.tokenization import load_tokenizer
from biomodels.models.vocab_training import train_wordpiece_vocab
from tests.helpers.paths import ROOT

SAMPLES = ROOT / "corpora" / "samples"
NER_LABELS = ["O", "B-Chemical", "I-Chemical", "B-Disease", "I-Disease"]
RE_LABELS = ["false", "CID"]


def sample_vocab(out: Path, size: int = 600) -> Path:
    """A small uncased WordPiece vocabulary trained on the NCBI-disease sample words."""
    words = []
    for line in (SAMPLES / "ncbi-disease" / "train_sample.tsv").read_text(encoding="utf-8").splitlines():
        if line.strip():
            words.append(line.split("\t")[0])
    train_wordpiece_vocab([" ".join(words[i : i + 200]) for i in range(0, len(words), 200)], size, True, out)
    return out


def _sharpen(model: torch.nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        w = model.classifier.weight
        w.copy_(torch.randn(w.shape, generator=gen))


def _sample_sentences(n: int = 40) -> list[list[str]]:
    sentences: list[list[str]] = [[]]
    for line in (SAMPLES / "ncbi-disease" / "train_sample.tsv").read_text(encoding="utf-8").splitlines():
        if line.strip():
            sentences[-1].append(line.split("\t")[0])
        elif sentences[-1]:
            if len(sentences) == n:
                break
            sentences.append([])
    return [s for s in sentences if s]


def _calibrate_bias(model: torch.nn.Module, logits: torch.Tensor, keep: int, fraction: float) -> None:
    """Shift label `keep`'s bias so that about `fraction` of the rows predict another label."""
    others = torch.cat([logits[:, :keep], logits[:, keep + 1 :]], dim=1).max(dim=1).values
    margin = others - logits[:, keep]
    shift = float(torch.quantile(margin, 1.0 - fraction))
    with torch.no_grad():
        model.classifier.bias[keep] += shift


def ner_model_dir(
    out: Path,
    vocab: Path,
    *,
    layers: int = 2,
    hidden: int = 64,
    heads: int = 2,
    max_length: int = 64,
    stride: int = 16,
    labels: list[str] = NER_LABELS,
    seed: int = 0,
    name: str = "cdr-tiny",
) -> Path:
    torch.manual_seed(seed)
    size = len(load_tokenizer(vocab, True))
    config = scratch_config(layers, hidden, heads, size, max_positions=max(max_length, 128))
    model, tok, _ = build_model(
        "ner",
        "scratch",
        len(labels),
        scratch_config=config,
        id2label=dict(enumerate(labels)),
        vocab=vocab,
        lower_case=True,
    )
    _sharpen(model, seed)
    model.eval()
    with torch.no_grad():  # about 15% of words in an entity, as in biomedical abstracts
        enc = tok(_sample_sentences(), is_split_into_words=True, padding=True, return_tensors="pt")
        logits = model(**enc).logits[enc["attention_mask"].bool()]
    _calibrate_bias(model, logits, labels.index("O"), 0.15)
    meta = {"name": name, "lower_case": True, "labels": labels, "max_length": max_length, "stride": stride}
    return save_model_dir(out, model, tok, "ner", labels, meta)


def re_model_dir(
    out: Path,
    vocab: Path,
    *,
    relation_task: str = "bc5cdr-cid",
    labels: list[str] = RE_LABELS,
    style: str = "entity_markers",
    seed: int = 1,
    name: str = "cid-tiny",
    max_length: int = 96,
) -> Path:
    torch.manual_seed(seed)
    size = len(load_tokenizer(vocab, True))
    config = scratch_config(2, 64, 2, size, max_positions=128)
    model, tok, _ = build_model(
        "re",
        "scratch",
        len(labels),
        scratch_config=config,
        id2label=dict(enumerate(labels)),
        vocab=vocab,
        lower_case=True,
    )
    markers = marker_tokens(style, ["Chemical", "Disease"])
    add_marker_tokens(model, tok, markers)
    _sharpen(model, seed)
    model.eval()
    with torch.no_grad():  # about half of the candidates positive
        texts = [
            " ".join(
                s[:3] + [markers[0]] + s[3:5] + [markers[1]] + s[5:8] + [markers[2]] + s[8:9] + [markers[3]] + s[9:]
            )
            for s in _sample_sentences()
            if len(s) > 10
        ]
        enc = tok(texts, padding=True, return_tensors="pt")
        logits = model(**enc).logits
    _calibrate_bias(model, logits, 0, 0.5)
    meta = {
        "name": name,
        "lower_case": True,
        "labels": labels,
        "max_length": max_length,
        "marker_style": style,
        "marker_tokens": markers,
        "relation_task": relation_task,
        "relation_input": "documents",
        "negative_label": labels[0],
    }
    return save_model_dir(out, model, tok, "re", labels, meta)
