"""Tiny random Megatron-BERT checkpoints written in each source's own layout, plus an independent
reference forward pass from the Megatron-BERT equations. Shared by the model tests.

Nothing here imports the code under test: the fused QKV is built with `torch.stack` in the layout
each checkpoint_version stores (0: [3, heads, d]; 1.0: [heads, d, 3]; >=2.0: [heads, 3, d]) from
known separate Q, K, V matrices, so the converter must undo it to pass.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

LAYERS, HIDDEN, HEADS, FFN, POSITIONS = 2, 32, 4, 128, 64
HEAD_DIM = HIDDEN // HEADS
REAL_VOCAB, PADDED_VOCAB = 100, 128
EPS = 1e-5

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = [
    "the",
    "of",
    "and",
    "in",
    "protein",
    "gene",
    "cell",
    "cells",
    "disease",
    "cancer",
    "dna",
    "rna",
    "mutation",
    "patients",
    "induced",
    "expression",
    "binding",
    "receptor",
    "human",
    "mouse",
]
PIECES = ["##es", "##ed", "##ing", "##ly", "##ase", "##in", "##ic", "##al"]
PUNCT = [".", ",", "(", ")", "-", ";", ":"]


def tiny_vocab() -> list[str]:
    """100 tokens: specials, words, pieces, punctuation, single letters and digits, then fillers."""
    tokens = SPECIALS + WORDS + PIECES + PUNCT + list("abcdefghijklmnopqrstuvwxyz") + list("0123456789")
    tokens += [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]
    tokens = tokens[:REAL_VOCAB]
    assert len(tokens) == REAL_VOCAB and len(set(tokens)) == REAL_VOCAB
    return tokens


def write_vocab(path: Path) -> Path:
    path.write_text("".join(t + "\n" for t in tiny_vocab()), encoding="utf-8")
    return path


@dataclass
class Layer:
    ln1_w: torch.Tensor
    ln1_b: torch.Tensor
    q_w: torch.Tensor
    k_w: torch.Tensor
    v_w: torch.Tensor
    q_b: torch.Tensor
    k_b: torch.Tensor
    v_b: torch.Tensor
    o_w: torch.Tensor
    o_b: torch.Tensor
    ln2_w: torch.Tensor
    ln2_b: torch.Tensor
    fc1_w: torch.Tensor
    fc1_b: torch.Tensor
    fc2_w: torch.Tensor
    fc2_b: torch.Tensor


@dataclass
class TinyWeights:
    word: torch.Tensor
    pos: torch.Tensor
    tokentype: torch.Tensor
    layers: list[Layer]
    final_w: torch.Tensor
    final_b: torch.Tensor
    pooler_w: torch.Tensor
    pooler_b: torch.Tensor
    heads: dict[str, torch.Tensor] = field(default_factory=dict)


def make_weights(seed: int = 0, std: float = 0.2) -> TinyWeights:
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * std

    def ln() -> tuple[torch.Tensor, torch.Tensor]:
        return 1.0 + r(HIDDEN), r(HIDDEN)

    layers = []
    for _ in range(LAYERS):
        l1w, l1b = ln()
        l2w, l2b = ln()
        layers.append(
            Layer(
                l1w,
                l1b,
                r(HIDDEN, HIDDEN),
                r(HIDDEN, HIDDEN),
                r(HIDDEN, HIDDEN),
                r(HIDDEN),
                r(HIDDEN),
                r(HIDDEN),
                r(HIDDEN, HIDDEN),
                r(HIDDEN),
                l2w,
                l2b,
                r(FFN, HIDDEN),
                r(FFN),
                r(HIDDEN, FFN),
                r(HIDDEN),
            )
        )
    fw, fb = ln()
    heads = {
        "lm_head.dense.weight": r(HIDDEN, HIDDEN),
        "lm_head.dense.bias": r(HIDDEN),
        "lm_head.layernorm.weight": 1.0 + r(HIDDEN),
        "lm_head.layernorm.bias": r(HIDDEN),
        "lm_head.bias": r(PADDED_VOCAB),
        "binary_head.weight": r(2, HIDDEN),
        "binary_head.bias": r(2),
    }
    return TinyWeights(
        r(PADDED_VOCAB, HIDDEN), r(POSITIONS, HIDDEN), r(2, HIDDEN), layers, fw, fb, r(HIDDEN, HIDDEN), r(HIDDEN), heads
    )


def fuse_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, version: float) -> torch.Tensor:
    """The fused tensor as Megatron stores it for `version` (weights [3H, H] or biases [3H])."""
    rest = q.shape[1:]
    qh, kh, vh = (t.reshape(HEADS, HEAD_DIM, *rest) for t in (q, k, v))
    if version == 0:
        fused = torch.stack([qh, kh, vh], dim=0)  # [3, heads, d]
    elif version == 1.0:
        fused = torch.stack([qh, kh, vh], dim=2)  # [heads, d, 3]
    else:
        fused = torch.stack([qh, kh, vh], dim=1)  # [heads, 3, d]
    return fused.reshape(3 * HIDDEN, *rest).contiguous()


def transformer_state(w: TinyWeights, version: float, attention_name: str) -> dict[str, torch.Tensor]:
    """Flat `layers.N.*` + `final_layernorm.*` keys of Megatron's transformer module."""
    out: dict[str, torch.Tensor] = {}
    for i, L in enumerate(w.layers):
        p = f"layers.{i}."
        out[p + "input_layernorm.weight"] = L.ln1_w
        out[p + "input_layernorm.bias"] = L.ln1_b
        out[p + f"{attention_name}.query_key_value.weight"] = fuse_qkv(L.q_w, L.k_w, L.v_w, version)
        out[p + f"{attention_name}.query_key_value.bias"] = fuse_qkv(L.q_b, L.k_b, L.v_b, version)
        out[p + f"{attention_name}.dense.weight"] = L.o_w
        out[p + f"{attention_name}.dense.bias"] = L.o_b
        out[p + "post_attention_layernorm.weight"] = L.ln2_w
        out[p + "post_attention_layernorm.bias"] = L.ln2_b
        out[p + "mlp.dense_h_to_4h.weight"] = L.fc1_w
        out[p + "mlp.dense_h_to_4h.bias"] = L.fc1_b
        out[p + "mlp.dense_4h_to_h.weight"] = L.fc2_w
        out[p + "mlp.dense_4h_to_h.bias"] = L.fc2_b
    out["final_layernorm.weight"] = w.final_w
    out["final_layernorm.bias"] = w.final_b
    return out


def megatron_args(lower_case: bool = True) -> argparse.Namespace:
    return argparse.Namespace(
        num_layers=LAYERS,
        hidden_size=HIDDEN,
        num_attention_heads=HEADS,
        ffn_hidden_size=FFN,
        max_position_embeddings=POSITIONS,
        layernorm_epsilon=EPS,
        make_vocab_size_divisible_by=128,
        tokenizer_type="BertWordPieceLowerCase" if lower_case else "BertWordPieceCase",
        bias_gelu_fusion=True,
    )


def save_megatron_lm(
    path: Path, w: TinyWeights, version: float | None, *, with_heads: bool = False, lower_case: bool = True
) -> Path:
    """A Megatron-LM `model_optim_rng.pt`; `version=None` leaves `checkpoint_version` out (means 0)."""
    v = 0 if version is None else version
    newer = v >= 3.0  # Megatron-LM renamed transformer->encoder and attention->self_attention with 3.0
    lm = {
        "embedding": {
            "word_embeddings": {"weight": w.word},
            "position_embeddings": {"weight": w.pos},
            "tokentype_embeddings": {"weight": w.tokentype},
        },
        ("encoder" if newer else "transformer"): transformer_state(w, v, "self_attention" if newer else "attention"),
        "pooler": {"dense.weight": w.pooler_w, "dense.bias": w.pooler_b},
    }
    model: dict = {"language_model": lm}
    if with_heads:
        model["lm_head"] = {k.split(".", 1)[1]: t for k, t in w.heads.items() if k.startswith("lm_head.")}
        model["binary_head"] = {k.split(".", 1)[1]: t for k, t in w.heads.items() if k.startswith("binary_head.")}
    ckpt = {"model": model, "iteration": 1000, "args": megatron_args(lower_case)}
    if version is not None:
        ckpt["checkpoint_version"] = version
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    return path


def half(tree: object) -> object:
    """The same nested dict with every float tensor in fp16, as the NGC releases store weights."""
    if isinstance(tree, dict):
        return {k: half(v) for k, v in tree.items()}
    if isinstance(tree, torch.Tensor) and tree.is_floating_point():
        return tree.half()
    return tree


def w_as_fp16(w: TinyWeights) -> TinyWeights:
    """The weights rounded through fp16 (what a converted fp16 release holds, in float32)."""
    import copy

    out = copy.deepcopy(w)
    for obj in [out, *out.layers]:
        for name, value in vars(obj).items():
            if isinstance(value, torch.Tensor):
                setattr(obj, name, value.half().float())
    out.heads = {k: v.half().float() for k, v in out.heads.items()}
    return out


def save_ngc_release_zip(path: Path, w: TinyWeights, *, openai_gelu: bool | None = False) -> Path:
    """NGC's `megatron_bert_345m_v0.1_uncased.zip`: `release/mp_rank_00/model_optim_rng.pt` inside.

    The checkpoint as the pre-versioning Megatron-LM release wrote it: no `checkpoint_version`
    (QKV as [3, heads, d]), fp16 weights, torch < 1.6 (non-zip) serialization, `args` with
    `openai_gelu` and no `bias_gelu_fusion` (erf GeLU; `openai_gelu=None` leaves args out),
    numpy and torch RNG state, optimizer state.
    """
    import zipfile

    import numpy as np

    lm = {
        "embedding": {
            "word_embeddings": {"weight": w.word},
            "position_embeddings": {"weight": w.pos},
            "tokentype_embeddings": {"weight": w.tokentype},
        },
        "transformer": transformer_state(w, 0, "attention"),
        "pooler": {"dense.weight": w.pooler_w, "dense.bias": w.pooler_b},
    }
    ckpt: dict = {
        "model": half({"language_model": lm}),
        "iteration": 0,
        "optimizer": {"state": {0: {"exp_avg": torch.zeros(3)}}, "param_groups": [{"lr": 1e-4, "params": [0]}]},
        "lr_scheduler": {"num_steps": 0, "max_lr": 1e-4},
        "random_rng_state": (3, tuple(range(5)), None),
        "np_rng_state": np.random.RandomState(0).get_state(),
        "torch_rng_state": torch.get_rng_state(),
    }
    if openai_gelu is not None:
        args = megatron_args(lower_case=True)
        del args.bias_gelu_fusion
        args.openai_gelu = openai_gelu
        args.params_dtype = torch.float16
        ckpt["args"] = args
    buf = io.BytesIO()
    torch.save(ckpt, buf, _use_new_zipfile_serialization=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("release/mp_rank_00/model_optim_rng.pt", buf.getvalue())
    return path


def save_biomegatron_pt(path: Path, w: TinyWeights) -> Path:
    """BioMegatron's NGC `MegatronBERT.pt`: a Megatron-style dict, top-level `model` holding the
    encoder only (no pooler, lm_head or binary_head), fp16, no version (0)."""
    lm = {
        "embedding": {
            "word_embeddings": {"weight": w.word},
            "position_embeddings": {"weight": w.pos},
            "tokentype_embeddings": {"weight": w.tokentype},
        },
        "transformer": transformer_state(w, 0, "attention"),
    }
    torch.save({"model": half({"language_model": lm})}, path)
    return path


def save_nemo_task_archive(path: Path, w: TinyWeights, version: float) -> Path:
    """A NeMo 1.0 task `.nemo`: `bert_model.language_model.{embedding,transformer}.*` keys, the QKV in
    `version`'s layout, and `<uuid32>_megatron_checkpoint_version.json` stating it."""
    state = {
        "bert_model.language_model.embedding.word_embeddings.weight": w.word,
        "bert_model.language_model.embedding.position_embeddings.weight": w.pos,
        "bert_model.language_model.embedding.tokentype_embeddings.weight": w.tokentype,
    }
    state.update(
        {f"bert_model.language_model.transformer.{k}": t for k, t in transformer_state(w, version, "attention").items()}
    )
    state["classifier.mlp.layer0.weight"] = torch.zeros(3, HIDDEN)  # the task head: not part of the encoder
    buf = io.BytesIO()
    torch.save(state, buf)
    uuid = "0123456789abcdef0123456789abcdef"
    config = "\n".join(
        [
            "language_model:",
            "  pretrained_model_name: biomegatron-bert-345m-uncased",
            f"  num_layers: {LAYERS}",
            f"  hidden_size: {HIDDEN}",
            f"  num_attention_heads: {HEADS}",
            f"  max_position_embeddings: {POSITIONS}",
            "tokenizer:",
            "  tokenizer_name: bert-base-uncased",
            f"  vocab_file: nemo:{uuid}_vocab.txt",
            "",
        ]
    )
    vocab = "".join(t + "\n" for t in tiny_vocab()).encode("utf-8")
    members = [
        ("./model_config.yaml", config.encode()),
        ("./model_weights.ckpt", buf.getvalue()),
        (f"./{uuid}_vocab.txt", vocab),
        (f"./{uuid}_megatron_checkpoint_version.json", json.dumps({"checkpoint_version": version}).encode()),
    ]
    write_tar(path, members)
    return path


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def save_nemo_pt(path: Path, w: TinyWeights) -> Path:
    """NeMo 1.0 `MegatronBERT.pt`: a flat state dict of MegatronBertEncoder (`language_model.` keys),
    no checkpoint_version, fused QKV in version-0 order ([3, heads, d])."""
    flat = {
        "language_model.embedding.word_embeddings.weight": w.word,
        "language_model.embedding.position_embeddings.weight": w.pos,
        "language_model.embedding.tokentype_embeddings.weight": w.tokentype,
    }
    flat.update({f"language_model.transformer.{k}": t for k, t in transformer_state(w, 0, "attention").items()})
    torch.save(flat, path)
    return path


def save_nemo_archive(
    path: Path, w: TinyWeights, *, megatron_legacy: bool, lower_case: bool = False, untrained_heads: bool = False
) -> Path:
    """A `.nemo` tar: model_config.yaml, model_weights.ckpt (`model.language_model.encoder...`), vocab.

    `untrained_heads`: the pooler and LM/NSP heads as NeMo initialises what its source lacked
    (random weights, zero biases, LayerNorm at 1/0), as in a `.nemo` made from BioMegatron's file."""
    version = 0 if megatron_legacy else 2.0
    pooler_b = torch.zeros(HIDDEN) if untrained_heads else w.pooler_b
    heads = dict(w.heads)
    if untrained_heads:
        heads = {k: (torch.zeros_like(t) if k.endswith("bias") else t) for k, t in heads.items()}
        heads["lm_head.layernorm.weight"] = torch.ones(HIDDEN)
    state = {
        "model.language_model.embedding.word_embeddings.weight": w.word,
        "model.language_model.embedding.position_embeddings.weight": w.pos,
        "model.language_model.embedding.tokentype_embeddings.weight": w.tokentype,
        "model.language_model.pooler.dense.weight": w.pooler_w,
        "model.language_model.pooler.dense.bias": pooler_b,
    }
    state.update(
        {f"model.language_model.encoder.{k}": t for k, t in transformer_state(w, version, "self_attention").items()}
    )
    state.update({f"model.{k}": t for k, t in heads.items()})
    buf = io.BytesIO()
    torch.save(state, buf)
    vocab_name = "3f2a9c_vocab.txt"
    config = "\n".join(
        [
            "precision: 16",
            f"num_layers: {LAYERS}",
            f"hidden_size: {HIDDEN}",
            f"ffn_hidden_size: {FFN}",
            f"num_attention_heads: {HEADS}",
            f"max_position_embeddings: {POSITIONS}",
            "encoder_seq_length: 16",
            f"layernorm_epsilon: {EPS}",
            "make_vocab_size_divisible_by: 128",
            "num_tokentypes: 2",
            f"megatron_legacy: {str(megatron_legacy).lower()}",
            "bert_binary_head: true",
            "tokenizer:",
            "  library: megatron",
            f"  type: {'BertWordPieceLowerCase' if lower_case else 'BertWordPieceCase'}",
            f"  vocab_file: nemo:{vocab_name}",
            "",
        ]
    )
    vocab = "".join(t + "\n" for t in tiny_vocab()).encode("utf-8")
    members = [("./model_config.yaml", config.encode()), ("./model_weights.ckpt", buf.getvalue())]
    return write_tar(path, [*members, (f"./{vocab_name}", vocab)])


def _layer_norm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + EPS) * w + b


def _gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def _gelu_erf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def reference_forward(
    w: TinyWeights, ids: torch.Tensor, token_types: torch.Tensor, mask: torch.Tensor, gelu: str = "tanh"
) -> torch.Tensor:
    """Megatron-BERT: embeddings summed (no LayerNorm), pre-LN blocks with residuals, final LN."""
    act = _gelu_tanh if gelu == "tanh" else _gelu_erf
    batch, seq = ids.shape
    x = w.word[ids] + w.pos[torch.arange(seq)][None] + w.tokentype[token_types]
    key_ok = mask.bool()[:, None, None, :]
    for L in w.layers:
        h = _layer_norm(x, L.ln1_w, L.ln1_b)

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, seq, HEADS, HEAD_DIM).transpose(1, 2)

        q, k, v = heads(h @ L.q_w.T + L.q_b), heads(h @ L.k_w.T + L.k_b), heads(h @ L.v_w.T + L.v_b)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(HEAD_DIM)
        scores = scores.masked_fill(~key_ok, float("-inf"))
        context = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(batch, seq, HIDDEN)
        x = x + context @ L.o_w.T + L.o_b
        h = _layer_norm(x, L.ln2_w, L.ln2_b)
        x = x + act(h @ L.fc1_w.T + L.fc1_b) @ L.fc2_w.T + L.fc2_b
    return _layer_norm(x, w.final_w, w.final_b)


def sample_inputs(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two sequences of 12 ids (second one padded after 8), ids reaching into the padded rows."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, PADDED_VOCAB, (2, 12), generator=g)
    types = torch.zeros_like(ids)
    types[:, 6:] = 1
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    return ids, types, mask
