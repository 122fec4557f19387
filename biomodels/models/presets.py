"""Named Megatron-BERT presets and the transformers configs built from them.

A preset fixes what a checkpoint file alone cannot tell: the number of attention heads, whether
the vocabulary is lower-cased, and which files to expect. The architecture numbers are those of
the 345m Megatron-LM / BioMegatron models (24 layers, hidden 1024, 16 heads, FFN 4096, 512
positions, 2 token types, LayerNorm eps 1e-5, tanh-approximated GeLU, vocabulary padded to a
multiple of 128). `megatron-bert-cased` / `-uncased` take the user's own config file instead.

Tested in `tests/biomodels/models/test_registry.py`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corpora.errors import ConfigError

# Megatron-LM's fused bias-GeLU is the tanh approximation; transformers names it "gelu_pytorch_tanh"
# (same formula as "gelu_new", computed by torch's fused kernel). Plain "gelu" is the erf form.
TANH_GELU = "gelu_pytorch_tanh"
ERF_GELU = "gelu"
MEGATRON_LAYER_NORM_EPS = 1e-5
ATTENTION_BACKENDS = ("sdpa", "eager")  # our encoder's attention paths (biomodels.models.encoder)
VOCAB_PAD_MULTIPLE = 128
BERT_VOCAB_SIZE = 30522  # bert-large-uncased vocab.txt, used by the uncased 345m models (padded: 30592)
BERT_CASED_VOCAB_SIZE = 28996  # bert-large-cased vocab.txt, used by the cased 345m models (padded: 29056)


def pad_vocab_size(size: int, multiple: int = VOCAB_PAD_MULTIPLE) -> int:
    """Megatron-LM pads the embedding table so its rows split evenly across GPUs (30522 -> 30592)."""
    if size <= 0:
        raise ConfigError(f"vocabulary size must be positive, got {size}")
    return ((size + multiple - 1) // multiple) * multiple


@dataclass(frozen=True)
class ModelPreset:
    """One named model: architecture, casing, and the files a user must supply."""

    name: str
    description: str
    lower_case: bool
    checkpoint_files: tuple[str, ...]  # any one of these names (searched in the preset folder)
    source: str  # where the files come from
    custom: bool = (
        False  # architecture from the user's config file (`biomed models convert --config`, or beside the checkpoint)
    )
    num_layers: int = 24
    hidden_size: int = 1024
    num_heads: int = 16
    ffn_size: int = 4096
    max_positions: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = MEGATRON_LAYER_NORM_EPS
    hidden_act: str = TANH_GELU
    vocab_size: int | None = BERT_VOCAB_SIZE  # real vocabulary (lines of vocab.txt)
    vocab_file: str = "vocab.txt"

    @property
    def padded_vocab_size(self) -> int | None:
        return pad_vocab_size(self.vocab_size) if self.vocab_size else None

    @property
    def expected_files(self) -> str:
        """Human-readable list of files that make this preset present (a .nemo bundles the rest)."""
        files = " or ".join(f for f in self.checkpoint_files if not f.endswith(".nemo"))
        extra = " + bert_config.json (or model_config.yaml)" if self.custom else ""
        return f"{files} + {self.vocab_file}{extra}; or one .nemo archive"


_NGC = "NVIDIA NGC"
PRESETS: dict[str, ModelPreset] = {
    p.name: p
    for p in [
        ModelPreset(
            "megatron-bert-345m-uncased",
            "Megatron-LM BERT 345m, uncased BERT vocabulary",
            lower_case=True,
            checkpoint_files=("model_optim_rng.pt", "MegatronBERT.pt", "*.nemo", "*.zip"),
            source=(
                f"{_NGC} megatron_bert_345m_v0.1_uncased.zip (release/mp_rank_00/model_optim_rng.pt inside; "
                "keep the zip as downloaded) + bert-large-uncased vocab.txt"
            ),
        ),
        ModelPreset(
            "megatron-bert-345m-cased",
            "Megatron-LM BERT 345m, cased BERT vocabulary",
            lower_case=False,
            checkpoint_files=("model_optim_rng.pt", "MegatronBERT.pt", "*.nemo", "*.zip"),
            vocab_size=BERT_CASED_VOCAB_SIZE,
            source=(
                f"{_NGC} megatron_bert_345m_v0.1_cased.zip (release/mp_rank_00/model_optim_rng.pt inside; "
                "keep the zip as downloaded) + bert-large-cased vocab.txt"
            ),
        ),
        ModelPreset(
            "biomegatron-bert-345m-uncased",
            "BioMegatron 345m (PubMed), uncased BERT vocabulary",
            lower_case=True,
            checkpoint_files=("MegatronBERT.pt", "model_optim_rng.pt", "*.nemo"),
            source=f"{_NGC} biomegatron345muncased (MegatronBERT.pt + vocab.txt)",
        ),
        ModelPreset(
            "biomegatron-bert-345m-cased",
            "BioMegatron 345m (PubMed), cased BERT vocabulary",
            lower_case=False,
            vocab_size=BERT_CASED_VOCAB_SIZE,
            checkpoint_files=("MegatronBERT.pt", "model_optim_rng.pt", "*.nemo"),
            source=f"{_NGC} biomegatron345mcased (MegatronBERT.pt + vocab.txt)",
        ),
        ModelPreset(
            "megatron-bert-uncased",
            "your own uncased Megatron-BERT: config (bert_config.json or model_config.yaml) "
            "beside the checkpoint, or --config",
            lower_case=True,
            checkpoint_files=("model_optim_rng.pt", "MegatronBERT.pt", "*.nemo", "*.zip"),
            source="your own Megatron-LM or NeMo training run",
            custom=True,
            vocab_size=None,
        ),
        ModelPreset(
            "megatron-bert-cased",
            "your own cased Megatron-BERT: config (bert_config.json or model_config.yaml) "
            "beside the checkpoint, or --config",
            lower_case=False,
            checkpoint_files=("model_optim_rng.pt", "MegatronBERT.pt", "*.nemo", "*.zip"),
            source="your own Megatron-LM or NeMo training run",
            custom=True,
            vocab_size=None,
        ),
    ]
}


def get_preset(name: str) -> ModelPreset:
    if name not in PRESETS:
        raise ConfigError(f"unknown model preset {name!r}; known presets: {', '.join(PRESETS)}")
    return PRESETS[name]


@dataclass(frozen=True)
class Architecture:
    """The numbers a MegatronBertConfig needs; gathered from a preset, a config file or a checkpoint."""

    num_layers: int
    hidden_size: int
    num_heads: int
    ffn_size: int
    max_positions: int
    type_vocab_size: int = 2
    layer_norm_eps: float = MEGATRON_LAYER_NORM_EPS
    hidden_act: str = TANH_GELU

    def to_config(self, vocab_size: int, **extra: Any):
        """A transformers MegatronBertConfig; `vocab_size` is the (padded) embedding row count."""
        from transformers import MegatronBertConfig

        if self.hidden_size % self.num_heads:
            raise ConfigError(f"hidden size {self.hidden_size} is not a multiple of {self.num_heads} attention heads")
        return MegatronBertConfig(
            vocab_size=vocab_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            intermediate_size=self.ffn_size,
            hidden_act=self.hidden_act,
            max_position_embeddings=self.max_positions,
            type_vocab_size=self.type_vocab_size,
            layer_norm_eps=self.layer_norm_eps,
            initializer_range=0.02,
            pad_token_id=0,
            **extra,
        )


def preset_architecture(preset: ModelPreset) -> Architecture:
    if preset.custom:
        raise ConfigError(
            f"preset {preset.name} has no fixed architecture: give your model's config file "
            "(bert_config.json or model_config.yaml beside the checkpoint, or --config)"
        )
    return Architecture(
        preset.num_layers,
        preset.hidden_size,
        preset.num_heads,
        preset.ffn_size,
        preset.max_positions,
        preset.type_vocab_size,
        preset.layer_norm_eps,
        preset.hidden_act,
    )


def config_from_preset(preset: ModelPreset | str, vocab_size: int | None = None):
    """MegatronBertConfig of a named preset; `vocab_size` is the real vocabulary (padded here)."""
    p = get_preset(preset) if isinstance(preset, str) else preset
    real = vocab_size or p.vocab_size
    if real is None:
        raise ConfigError(f"preset {p.name} needs the vocabulary size (count the lines of its vocab.txt)")
    return preset_architecture(p).to_config(pad_vocab_size(real))


# Key spellings found in Megatron-LM args, NeMo model_config.yaml, NeMo's old bert_config.json
# ("hidden-size", "max-seq-length") and transformers config.json, mapped to one name each.
_ALIASES = {
    "num_layers": "num_layers",
    "num_hidden_layers": "num_layers",
    "hidden_size": "hidden_size",
    "num_attention_heads": "num_heads",
    "ffn_hidden_size": "ffn_size",
    "intermediate_size": "ffn_size",
    "max_position_embeddings": "max_positions",
    "max_seq_length": "max_positions",
    "num_tokentypes": "type_vocab_size",
    "type_vocab_size": "type_vocab_size",
    "layernorm_epsilon": "layer_norm_eps",
    "layer_norm_eps": "layer_norm_eps",
}


def gelu_form(config: dict[str, Any]) -> tuple[str, str]:
    """transformers' `hidden_act` for the GeLU a checkpoint's args (or NeMo config) describe, and why."""
    if not config:
        return TANH_GELU, "no args in the checkpoint: Megatron-LM code before April 2020, the tanh form"
    if config.get("openai_gelu") is True:
        return TANH_GELU, "args openai_gelu=True: the tanh form"
    if "bias_gelu_fusion" in config:
        if config["bias_gelu_fusion"]:
            return TANH_GELU, "args bias_gelu_fusion=True: the fused bias-GeLU kernel, the tanh form"
        return ERF_GELU, "args bias_gelu_fusion=False: F.gelu, the exact erf form"
    if "openai_gelu" in config:
        return ERF_GELU, "args openai_gelu=False and no bias_gelu_fusion (Megatron-LM April-September 2020): F.gelu"
    return TANH_GELU, "no openai_gelu or bias_gelu_fusion in the checkpoint's config: Megatron-LM's tanh form"


def normalize_config_keys(raw: dict[str, Any]) -> dict[str, Any]:
    """Map the config spellings of Megatron-LM, NeMo and transformers onto `Architecture` field names.

    Also reads the activation: `hidden_act` when stated, else what `openai_gelu` / `bias_gelu_fusion`
    say (`gelu_form`); a config with none of them leaves it to the defaults.
    """
    out: dict[str, Any] = {}
    flat = {str(k).replace("-", "_"): v for k, v in raw.items()}
    for key, value in flat.items():
        if key in _ALIASES and value is not None:
            out[_ALIASES[key]] = value
    if "hidden_act" in flat:
        out["hidden_act"] = flat["hidden_act"]
    elif "openai_gelu" in flat or "bias_gelu_fusion" in flat:
        out["hidden_act"] = gelu_form(flat)[0]
    if "ffn_size" not in out and "hidden_size" in out:
        out["ffn_size"] = 4 * int(out["hidden_size"])  # Megatron-LM's default when ffn_hidden_size is unset
    return out


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON or YAML model config; a NeMo config's `model:` section is used when present."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: model config file not found")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix.lower() in {".yaml", ".yml"}:
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # json.JSONDecodeError, yaml.YAMLError
        raise ConfigError(f"{p}: cannot parse model config: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: model config must be a mapping, got {type(data).__name__}")
    if isinstance(data.get("model"), dict):
        data = data["model"]
    return data


def architecture_from_mapping(raw: dict[str, Any], where: str, defaults: Architecture | None = None) -> Architecture:
    """Build an Architecture from config keys, filling gaps from `defaults`; name what is missing."""
    found = normalize_config_keys(raw)
    fields = dict(defaults.__dict__) if defaults else {}
    fields.update(found)
    required = ("num_layers", "hidden_size", "num_heads", "max_positions")
    missing = [k for k in required if k not in fields]
    if missing:
        raise ConfigError(f"{where}: model config lacks {', '.join(missing)}")
    fields.setdefault("ffn_size", 4 * int(fields["hidden_size"]))
    try:
        return Architecture(
            num_layers=int(fields["num_layers"]),
            hidden_size=int(fields["hidden_size"]),
            num_heads=int(fields["num_heads"]),
            ffn_size=int(fields["ffn_size"]),
            max_positions=int(fields["max_positions"]),
            type_vocab_size=int(fields.get("type_vocab_size", 2)),
            layer_norm_eps=float(fields.get("layer_norm_eps", MEGATRON_LAYER_NORM_EPS)),
            hidden_act=str(fields.get("hidden_act", TANH_GELU)),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: bad value in model config: {exc}") from exc


def config_from_file(path: str | Path, vocab_size: int):
    """MegatronBertConfig from a user's Megatron/NeMo config (JSON or YAML) for the custom presets.

    `vocab_size` is the real vocabulary size; the config's `padded_vocab_size` or
    `make_vocab_size_divisible_by` decide the embedding rows when given.
    """
    raw = read_config_file(path)
    arch = architecture_from_mapping(raw, str(path))
    flat = {str(k).replace("-", "_"): v for k, v in raw.items()}
    if flat.get("padded_vocab_size"):
        rows = int(flat["padded_vocab_size"])
    else:
        rows = pad_vocab_size(vocab_size, int(flat.get("make_vocab_size_divisible_by") or VOCAB_PAD_MULTIPLE))
    return arch.to_config(rows)


def scratch_config(
    layers: int,
    hidden: int,
    heads: int,
    vocab_size: int,
    ffn: int | None = None,
    max_positions: int = 512,
):
    """A small random Megatron-BERT config (CPU runs, tests); `vocab_size` is padded to 128."""
    arch = Architecture(layers, hidden, heads, ffn or 4 * hidden, max_positions)
    return arch.to_config(pad_vocab_size(vocab_size))


__all__ = [
    "Architecture",
    "ModelPreset",
    "PRESETS",
    "TANH_GELU",
    "MEGATRON_LAYER_NORM_EPS",
    "architecture_from_mapping",
    "config_from_file",
    "config_from_preset",
    "get_preset",
    "normalize_config_keys",
    "pad_vocab_size",
    "preset_architecture",
    "read_config_file",
    "scratch_config",
]
