"""Convert Megatron-LM / NeMo Megatron-BERT checkpoints into HuggingFace MegatronBert folders.

The one subtle step is the fused QKV projection: its rows are ordered by `checkpoint_version`
(0: [3, heads, head_dim]; 1.0: [heads, head_dim, 3]; 2.0 and later: [heads, 3, head_dim]) and
must be brought to [3, heads, head_dim] before splitting into query, key and value. Getting it
wrong still loads and runs, only with ruined accuracy, so the version used and where it came
from are recorded in `biomed.json` beside the weights.

Unlike transformers' own converter, the LM and NSP heads (and the pooler) are optional: BioMegatron
checkpoints ship without them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from biomodels.models.megatron_checkpoint import SourceCheckpoint, layer_indices, load_source_checkpoint
from biomodels.models.presets import (
    ERF_GELU,
    TANH_GELU,
    VOCAB_PAD_MULTIPLE,
    Architecture,
    ModelPreset,
    architecture_from_mapping,
    get_preset,
    preset_architecture,
    read_config_file,
)
from biomodels.models.tokenization import METADATA_FILE, build_tokenizer, read_vocab
from corpora.errors import ConfigError, ModelError
from corpora.file_modes import apply_umask

log = logging.getLogger(__name__)

CONVERTER_VERSION = "2"
GELU_CHOICES = {"erf": ERF_GELU, "tanh": TANH_GELU}
# Optional heads by canonical prefix; their biases are what an untrained head gives away.
_HEADS = {
    "pooler": ("pooler.dense.weight", "pooler.dense.bias"),
    "lm_head": (
        "lm_head.dense.weight",
        "lm_head.dense.bias",
        "lm_head.layernorm.weight",
        "lm_head.layernorm.bias",
        "lm_head.bias",
    ),
    "binary_head": ("binary_head.weight", "binary_head.bias"),
}

# canonical Megatron name (after "layers.N.") -> HuggingFace MegatronBert name (after "layer.N.")
_LAYER_MAP = {
    "input_layernorm": "attention.ln",
    "attention.dense": "attention.output.dense",
    "post_attention_layernorm": "ln",
    "mlp.dense_h_to_4h": "intermediate.dense",
    "mlp.dense_4h_to_h": "output.dense",
}
_TOP_MAP = {
    "embedding.word_embeddings.weight": "bert.embeddings.word_embeddings.weight",
    "embedding.position_embeddings.weight": "bert.embeddings.position_embeddings.weight",
    "embedding.tokentype_embeddings.weight": "bert.embeddings.token_type_embeddings.weight",
    "final_layernorm.weight": "bert.encoder.ln.weight",
    "final_layernorm.bias": "bert.encoder.ln.bias",
    "pooler.dense.weight": "bert.pooler.dense.weight",
    "pooler.dense.bias": "bert.pooler.dense.bias",
    "lm_head.dense.weight": "cls.predictions.transform.dense.weight",
    "lm_head.dense.bias": "cls.predictions.transform.dense.bias",
    "lm_head.layernorm.weight": "cls.predictions.transform.LayerNorm.weight",
    "lm_head.layernorm.bias": "cls.predictions.transform.LayerNorm.bias",
    "lm_head.bias": "cls.predictions.bias",
    "binary_head.weight": "cls.seq_relationship.weight",
    "binary_head.bias": "cls.seq_relationship.bias",
}


def split_fused_qkv(param: Any, checkpoint_version: float, num_heads: int) -> tuple[Any, Any, Any]:
    """Query, key and value parts of a fused QKV weight [3*H, H] or bias [3*H], by version."""
    rows = param.shape[0]
    if rows % (3 * num_heads):
        raise ModelError(f"fused QKV has {rows} rows, not a multiple of 3 x {num_heads} heads")
    head_dim = rows // (3 * num_heads)
    rest = tuple(param.shape[1:])
    n_rest = len(rest)
    if checkpoint_version == 0:
        grouped = param.reshape(3, num_heads, head_dim, *rest)
    elif checkpoint_version == 1.0:
        grouped = param.reshape(num_heads, head_dim, 3, *rest).permute(2, 0, 1, *range(3, 3 + n_rest))
    elif checkpoint_version >= 2.0:
        grouped = param.reshape(num_heads, 3, head_dim, *rest).permute(1, 0, 2, *range(3, 3 + n_rest))
    else:
        raise ModelError(f"unknown checkpoint_version {checkpoint_version}: known are 0, 1.0, 2.0 and later")
    grouped = grouped.reshape(3, num_heads * head_dim, *rest)
    return grouped[0].contiguous(), grouped[1].contiguous(), grouped[2].contiguous()


def to_hf_state_dict(weights: dict[str, Any], checkpoint_version: float, num_heads: int) -> dict[str, Any]:
    """Canonical Megatron weights -> MegatronBert names (`bert.` prefix, heads under `cls.`)."""
    out: dict[str, Any] = {}
    unknown: list[str] = []
    for name, tensor in weights.items():
        if name in _TOP_MAP:
            out[_TOP_MAP[name]] = tensor
            continue
        if not name.startswith("layers."):
            unknown.append(name)
            continue
        _, idx, rest = name.split(".", 2)
        base = f"bert.encoder.layer.{idx}."
        module, _, kind = rest.rpartition(".")
        if module == "attention.query_key_value":
            q, k, v = split_fused_qkv(tensor, checkpoint_version, num_heads)
            for part, value in zip(("query", "key", "value"), (q, k, v)):
                out[f"{base}attention.self.{part}.{kind}"] = value
        elif module in _LAYER_MAP:
            out[f"{base}{_LAYER_MAP[module]}.{kind}"] = tensor
        else:
            unknown.append(name)
    if unknown:
        raise ModelError(f"weights with no MegatronBert counterpart: {', '.join(sorted(unknown)[:8])}")
    return out


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _weights_architecture(src: SourceCheckpoint) -> dict[str, int]:
    """What the tensors themselves tell: layers, hidden, FFN, positions, token types, rows."""
    w = src.weights
    layers = layer_indices(w)
    if not layers:
        raise ModelError(f"{src.path}: no transformer layers (layers.N.*) in the checkpoint")
    if layers != list(range(len(layers))):
        raise ModelError(f"{src.path}: transformer layers are not numbered 0..{len(layers) - 1}: {layers}")
    for required in (
        "embedding.position_embeddings.weight",
        "final_layernorm.weight",
        "layers.0.mlp.dense_h_to_4h.weight",
    ):
        if required not in w:
            raise ModelError(f"{src.path}: checkpoint lacks {required}")
    word = w["embedding.word_embeddings.weight"]
    tokentype = w.get("embedding.tokentype_embeddings.weight")
    return {
        "num_layers": len(layers),
        "hidden_size": int(word.shape[1]),
        "ffn_size": int(w["layers.0.mlp.dense_h_to_4h.weight"].shape[0]),
        "max_positions": int(w["embedding.position_embeddings.weight"].shape[0]),
        "type_vocab_size": int(tokentype.shape[0]) if tokentype is not None else 0,
        "rows": int(word.shape[0]),
    }


def resolve_architecture(
    src: SourceCheckpoint, preset: ModelPreset | None, config_file: Path | None
) -> tuple[Architecture, int]:
    """Architecture from the tensors plus heads/eps/activation from config file, source or preset.

    Every stated number must agree with the tensors; a preset whose architecture differs from the
    checkpoint is an error, not a silent override.
    """
    from_weights = _weights_architecture(src)
    rows = from_weights.pop("rows")
    if from_weights["type_vocab_size"] == 0:
        raise ModelError(f"{src.path}: checkpoint has no token type embeddings (embedding.tokentype_embeddings.weight)")
    stated: list[tuple[str, Architecture]] = []
    if preset is not None and not preset.custom:
        stated.append((f"preset {preset.name}", preset_architecture(preset)))
    base = stated[0][1] if stated else None
    if src.config:
        try:
            stated.append((f"{src.path} (its own config)", architecture_from_mapping(src.config, str(src.path), base)))
        except ConfigError:
            log.debug("%s: source config incomplete, using other sources", src.path)
    if config_file is not None:
        stated.append(
            (str(config_file), architecture_from_mapping(read_config_file(config_file), str(config_file), base))
        )
    if not stated:
        raise ConfigError(
            f"{src.path}: the checkpoint does not record its number of attention heads; give a preset "
            "(--preset) or your model's config file (--config to `biomed models convert`, --model-config to "
            "`biomed train`)"
        )
    for where, arch in stated:
        for key, value in from_weights.items():
            if getattr(arch, key) != value:
                raise ModelError(f"{src.path}: checkpoint has {key}={value} but {where} says {getattr(arch, key)}")
    heads = {where: arch.num_heads for where, arch in stated}
    if len(set(heads.values())) > 1:
        raise ModelError(f"{src.path}: sources disagree on the number of attention heads: {heads}")
    where, chosen = stated[-1]  # the most specific source: config file > checkpoint's own > preset
    if chosen.hidden_size % chosen.num_heads:
        raise ModelError(f"{where}: hidden size {chosen.hidden_size} is not divisible by {chosen.num_heads} heads")
    return chosen, rows


def resolve_lower_case(src: SourceCheckpoint, preset: ModelPreset | None, stated: bool | None = None) -> bool:
    """Casing from the user (`stated`: --lowercase/--cased), the preset or the checkpoint; never guessed."""
    told = [
        (who, v)
        for who, v in (
            ("the checkpoint's tokenizer", src.lower_case),
            (f"preset {preset.name}" if preset else "", preset.lower_case if preset else None),
            ("--lowercase/--cased", stated),
        )
        if v is not None
    ]
    if len({v for _, v in told}) > 1:
        said = "; ".join(f"{who}: {'uncased' if v else 'cased'}" for who, v in told)
        raise ConfigError(f"{src.path}: the casing of the vocabulary is stated twice, differently ({said})")
    if told:
        return told[-1][1]
    raise ConfigError(
        f"{src.path}: the checkpoint does not say whether its vocabulary is lower-cased; give a preset "
        "(--preset ...-cased or ...-uncased) or say it (--lowercase or --cased)"
    )


def _find_vocab(src: SourceCheckpoint, vocab: str | Path | None, workdir: Path) -> Path:
    """Explicit --vocab, the .nemo's bundled vocab, or vocab.txt beside (or above) the checkpoint."""
    if vocab is not None:
        p = Path(vocab).expanduser()
        p = p / "vocab.txt" if p.is_dir() else p
        if not p.is_file():
            raise ModelError(f"{p}: vocabulary file not found")
        return p
    if src.vocab_text is not None:
        p = workdir / ".vocab-from-nemo.txt"
        p.write_text(src.vocab_text, encoding="utf-8")
        return p
    for folder in [src.path.parent, *list(src.path.parents)[1:4]]:
        if (folder / "vocab.txt").is_file():
            return folder / "vocab.txt"
    raise ModelError(
        f"{src.path}: no vocabulary found; put the model's vocab.txt beside the checkpoint or pass --vocab PATH"
    )


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def convert_checkpoint(
    src: str | Path,
    dst: str | Path,
    *,
    preset: str | ModelPreset | None = None,
    vocab: str | Path | None = None,
    checkpoint_version: float | None = None,
    config: str | Path | None = None,
    lower_case: bool | None = None,
    gelu: str | None = None,
    trust_checkpoint: bool = False,
) -> Path:
    """Write a HuggingFace MegatronBert folder for a Megatron-LM / NeMo checkpoint; return `dst`.

    `gelu` ("erf" or "tanh") overrides the GeLU form read from the checkpoint's args;
    `trust_checkpoint` unpickles without the allow-list (a file the user trusts).

    The folder holds config.json, model.safetensors (float32), vocab.txt, tokenizer files and
    biomed.json (preset, source path and sha256, checkpoint_version and where it came from, casing,
    real and padded vocabulary sizes, heads found). `config.json` is written last, so a folder
    with it is complete. `dst` may be the folder holding the source files (in-place conversion).
    """
    import torch
    from safetensors.torch import save_file

    p = get_preset(preset) if isinstance(preset, str) else preset
    if gelu is not None and gelu not in GELU_CHOICES:
        raise ConfigError(f"--gelu must be one of {', '.join(GELU_CHOICES)}, got {gelu!r}")
    source = load_source_checkpoint(src, trust=trust_checkpoint)
    if checkpoint_version is not None:
        version, origin = float(checkpoint_version), "given by the user"
    else:
        version, origin = float(source.checkpoint_version or 0.0), source.version_origin
    out = Path(dst).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    lower_case = resolve_lower_case(source, p, lower_case)
    arch, rows = resolve_architecture(source, p, Path(config) if config else None)
    hidden_act, gelu_origin = _choose_gelu(gelu, source, Path(config) if config else None, arch)
    arch = replace(arch, hidden_act=hidden_act)
    untrained = untrained_heads(source.weights)
    for head in untrained:
        for name in _HEADS[head]:
            source.weights.pop(name, None)
        log.info("%s: dropped the %s: its biases are all zero, as a freshly initialised head's are", source.path, head)
    vocab_path = _find_vocab(source, vocab, out)
    tokens = read_vocab(vocab_path)
    if len(tokens) > rows:
        raise ModelError(
            f"{vocab_path}: {len(tokens)} tokens but the checkpoint has only {rows} embedding rows; wrong vocab.txt?"
        )
    if rows - len(tokens) >= VOCAB_PAD_MULTIPLE:
        log.warning(
            "%s: %d tokens for %d embedding rows (padding is under %d rows); is this the model's vocabulary?",
            vocab_path,
            len(tokens),
            rows,
            VOCAB_PAD_MULTIPLE,
        )

    state = to_hf_state_dict(source.weights, version, arch.num_heads)
    # one float32 copy per tensor: split Q/K/V are views that share storage, which safetensors refuses
    state = {k: v.detach().to(torch.float32, copy=True).contiguous() for k, v in state.items()}
    has_lm = "cls.predictions.bias" in state
    has_nsp = "cls.seq_relationship.weight" in state
    architecture = (
        "MegatronBertForPreTraining"
        if has_lm and has_nsp
        else "MegatronBertForMaskedLM"
        if has_lm
        else "MegatronBertModel"
    )
    hf_config = arch.to_config(rows, architectures=[architecture])

    target_vocab = out / "vocab.txt"
    if not (target_vocab.exists() and target_vocab.resolve() == vocab_path.resolve()):
        _write_atomic(target_vocab, "".join(t + "\n" for t in tokens).encode("utf-8"))
    if vocab_path.name == ".vocab-from-nemo.txt":
        vocab_path.unlink()
    tokenizer = build_tokenizer(target_vocab, lower_case, arch.max_positions)
    tokenizer.save_pretrained(str(out))
    tmp = out / "model.safetensors.tmp"
    save_file(state, str(tmp), metadata={"format": "pt"})
    apply_umask(tmp)  # safetensors writes 0600
    os.replace(tmp, out / "model.safetensors")
    meta = {
        "converter_version": CONVERTER_VERSION,
        "preset": p.name if p else None,
        "source_path": str(source.path.resolve()),
        "source_sha256": sha256_file(source.path),
        "source_layout": source.layout,
        "checkpoint_version": version,
        "checkpoint_version_origin": origin,
        "lower_case": lower_case,
        "vocab_size": len(tokens),
        "padded_vocab_size": rows,
        "architecture": asdict(arch),
        "heads": {"pooler": "bert.pooler.dense.weight" in state, "lm_head": has_lm, "binary_head": has_nsp},
        # heads the source held only as random initialisations: new in the converted model, not pretrained
        "untrained_heads_dropped": untrained,
        "gelu": "erf" if hidden_act == ERF_GELU else "tanh",
        "gelu_origin": gelu_origin,
        "source_member": source.member,
        "skipped_source_keys": source.ignored_keys[:50],
    }
    _write_atomic(out / METADATA_FILE, json.dumps(meta, indent=2).encode("utf-8"))
    hf_config.save_pretrained(str(out))
    log.info(
        "converted %s (%s, checkpoint_version %s: %s; GeLU %s: %s) -> %s",
        source.path,
        source.layout,
        version,
        origin,
        meta["gelu"],
        gelu_origin,
        out,
    )
    return out


def _choose_gelu(
    gelu: str | None, source: SourceCheckpoint, config_file: Path | None, arch: Architecture
) -> tuple[str, str]:
    """The GeLU form and why: --gelu, else the user's config file when it says, else the checkpoint."""
    if gelu is not None:
        return GELU_CHOICES[gelu], f"--gelu {gelu} given by the user"
    if config_file is not None:
        stated = read_config_file(config_file)
        if any(k in stated for k in ("hidden_act", "openai_gelu", "bias_gelu_fusion")):
            return arch.hidden_act, f"{config_file}"
    return source.gelu, source.gelu_origin


def untrained_heads(weights: dict[str, Any]) -> list[str]:
    """Optional heads present only as a fresh initialisation: every bias exactly zero.

    NeMo saves the pooler and LM/NSP heads it created (random weights, zero biases) into a `.nemo`
    made from a checkpoint that lacked them; trained heads never keep all-zero biases.
    """
    found = []
    for head, names in _HEADS.items():
        biases = [weights[n] for n in names if n.endswith("bias") and n in weights]
        if biases and all(not bool(b.float().abs().sum()) for b in biases):
            found.append(head)
    return found


def read_conversion_record(model_dir: str | Path) -> dict[str, Any] | None:
    """The biomed.json a conversion wrote, or None for folders converted elsewhere."""
    meta = Path(model_dir) / METADATA_FILE
    if not meta.is_file():
        return None
    try:
        return json.loads(meta.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelError(f"{meta}: not valid JSON: {exc}") from exc


__all__ = [
    "GELU_CHOICES",
    "convert_checkpoint",
    "read_conversion_record",
    "sha256_file",
    "split_fused_qkv",
    "to_hf_state_dict",
    "untrained_heads",
]
