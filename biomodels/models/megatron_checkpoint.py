"""Read the three Megatron-BERT source layouts into one canonical form.

Sources (all checked against the public Megatron-LM / NeMo code):

* Megatron-LM `model_optim_rng.pt` (or a checkpoint folder with `mp_rank_00/`): a dict with the
  weights under `['model']['language_model']` (`embedding`, `transformer` or `encoder`, `pooler`),
  optional `['model']['lm_head']` / `['model']['binary_head']`, `checkpoint_version` and `args`
  (an argparse Namespace) at the top level. No `checkpoint_version` means version 0, as in
  Megatron-LM itself.
* NeMo `MegatronBERT.pt`: NeMo 1.0's `MegatronBertEncoder.restore_weights` loads either the
  Megatron-LM dict above or a flat state dict of its own module (`language_model.embedding...`,
  possibly with a `bert_model.`-style prefix); a flat dict has no version and NeMo read it as 0.
* NGC's zip of a Megatron-LM release (`megatron_bert_345m_v0.1_uncased.zip`): the same dict as
  `release/mp_rank_00/model_optim_rng.pt` inside the zip, read from there as downloaded.
* `.nemo`: a tar with `model_config.yaml`, `model_weights.ckpt` (keys `model.language_model.
  encoder.layers.N.self_attention...`, `model.lm_head...`, `model.binary_head...`) and the vocab
  file. NeMo's own attention stores the fused QKV as [heads, 3, head_dim] unless the config says
  `megatron_legacy: true` ([3, heads, head_dim], transposed at run time), so that flag sets the
  version (0 or 2.0). NeMo 1.0 task archives (`bert_model.language_model.*` keys) carry a
  `<uuid>_megatron_checkpoint_version.json` stating the version, which wins over the default 0.

GeLU: Megatron-LM's fused bias-GeLU and `openai_gelu=True` are the tanh form; its args with
`openai_gelu=False` and no `bias_gelu_fusion` (the code of April-September 2020) mean the exact erf
GeLU (`F.gelu`); a file with no args predates both and used the tanh form (`gelu_form`).

Every file is unpickled with the allow-list of `biomodels.models.checkpoint_files`.

Canonical weight names are Megatron's, without prefixes: `embedding.word_embeddings.weight`,
`layers.N.attention.query_key_value.weight`, `final_layernorm.weight`, `pooler.dense.weight`,
`lm_head.dense.weight`, `binary_head.weight`, ...

Tested in `tests/biomodels/models/test_checkpoint_conversion.py`.
"""

from __future__ import annotations

import json
import logging
import re
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from biomodels.models.checkpoint_files import (
    is_torch_zip,
    load_checkpoint,
    load_member,
    read_tar_member,
    tar_member,
    zip_member,
)
from biomodels.models.presets import TANH_GELU, gelu_form
from corpora.errors import ModelError

log = logging.getLogger(__name__)

NEMO_SUFFIX = ".nemo"
_LAYER_KEY = re.compile(r"^layers\.(\d+)\.(.+)$")
# Keys that carry no weights we need (RNG state, TransformerEngine extra state, HF buffers).
_IGNORED_KEY = re.compile(r"(_extra_state$|position_ids$|\.inv_freq$)")


@dataclass
class SourceCheckpoint:
    """Weights and what the source says about itself; `None` where the source is silent."""

    layout: str  # "megatron-lm" | "nemo-pt" | "nemo-archive"
    path: Path  # the file actually read
    weights: dict[str, Any]  # canonical name -> torch.Tensor
    checkpoint_version: float | None = None
    version_origin: str = "default"  # where checkpoint_version came from
    config: dict[str, Any] = field(default_factory=dict)  # args / model_config.yaml as a dict
    lower_case: bool | None = None
    vocab_text: str | None = None  # vocab file bundled in a .nemo archive
    vocab_name: str | None = None
    ignored_keys: list[str] = field(default_factory=list)
    member: str | None = None  # the archive member the weights came from (zip, .nemo)
    gelu: str = TANH_GELU  # transformers' hidden_act for the GeLU the source was trained with
    gelu_origin: str = "no GeLU setting recorded: Megatron-LM's tanh form"


def find_checkpoint_file(path: str | Path) -> Path:
    """The one weights file a user path points at (a file, or a Megatron-LM checkpoint folder).

    Folders may hold `model_optim_rng.pt`, `MegatronBERT.pt`, a `.nemo`, `mp_rank_00/`, or a
    Megatron-LM save folder with `latest_checkpointed_iteration.txt` naming `release` or an
    iteration. More than one model-parallel rank is refused: merge ranks first.
    """
    p = Path(path).expanduser()
    if p.is_file():
        return p
    if not p.is_dir():
        raise ModelError(f"{p}: no such checkpoint file or folder")
    tracker = p / "latest_checkpointed_iteration.txt"
    if tracker.is_file():
        it = tracker.read_text(encoding="utf-8").strip()
        sub = p / ("release" if it == "release" else f"iter_{int(it):07d}")
        if sub.is_dir():
            return find_checkpoint_file(sub)
        raise ModelError(f"{tracker}: names iteration {it!r} but {sub} does not exist")
    ranks = sorted(d for d in p.iterdir() if d.is_dir() and re.match(r"mp_rank_\d+(_\d+)?$", d.name))
    if len(ranks) > 1:
        raise ModelError(
            f"{p}: holds {len(ranks)} model-parallel ranks ({', '.join(r.name for r in ranks)}); "
            "merge them into one rank first (Megatron-LM tools/checkpoint_util.py --target-tensor-parallel-size 1)"
        )
    if ranks:
        return find_checkpoint_file(ranks[0])
    for name in ("model_optim_rng.pt", "MegatronBERT.pt", "model_weights.ckpt"):
        if (p / name).is_file():
            return p / name
    nemos = sorted(p.glob(f"*{NEMO_SUFFIX}"))
    if len(nemos) == 1:
        return nemos[0]
    zips = sorted(p.glob("*.zip"))
    if len(zips) == 1:
        return zips[0]
    if (p / "release").is_dir():
        return find_checkpoint_file(p / "release")
    raise ModelError(
        f"{p}: no checkpoint found; expected model_optim_rng.pt, MegatronBERT.pt, one .nemo file, "
        "mp_rank_00/model_optim_rng.pt, or NGC's zip of a release"
    )


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts of tensors -> {"a.b.c": tensor}; Megatron-LM nests by module."""
    import torch

    out: dict[str, Any] = {}
    if isinstance(tree, dict):
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}{k}."))
    elif isinstance(tree, torch.Tensor):
        out[prefix[:-1]] = tree
    return out


def canonical_name(key: str) -> str | None:
    """Megatron-LM/NeMo key -> canonical name, or None when it is not a model weight we know."""
    k = key
    if "language_model." in k:
        k = k.split("language_model.", 1)[1]
    elif k.startswith(("embedding.", "transformer.", "encoder.")):
        pass  # a `model` dict holding the language model's parts directly
    else:
        m = re.search(r"(^|\.)(lm_head|binary_head)\.", k)
        if m:
            k = k[m.start(2) :]
        else:
            return None
    for stack in ("transformer.", "encoder."):
        if k.startswith(stack):
            k = k[len(stack) :]
            break
    k = k.replace(".self_attention.", ".attention.")
    if k.startswith(("embedding.", "layers.", "final_layernorm.", "pooler.", "lm_head.", "binary_head.")):
        return k
    return None


def canonicalize(flat: dict[str, Any], where: Path) -> tuple[dict[str, Any], list[str]]:
    """Rename every weight to its canonical name; report keys that were skipped."""
    weights: dict[str, Any] = {}
    ignored: list[str] = []
    for key, tensor in flat.items():
        if _IGNORED_KEY.search(key):
            continue
        name = canonical_name(key)
        if name is None:
            ignored.append(key)
            continue
        if name in weights:
            raise ModelError(f"{where}: two weights map to {name} (second one is {key})")
        weights[name] = tensor
    if "embedding.word_embeddings.weight" not in weights:
        sample = ", ".join(list(flat)[:5])
        if any(".linear_qkv." in k or "decoder.layers." in k for k in flat):
            raise ModelError(
                f"{where}: Megatron-Core (mcore) layout is not supported; convert it to the legacy layout first"
            )
        raise ModelError(
            f"{where}: no embedding.word_embeddings.weight found; not a Megatron-BERT checkpoint? first keys: {sample}"
        )
    return weights, ignored


def _lower_case_from_tokenizer(tokenizer_type: Any, name: Any = None) -> bool | None:
    """Megatron's `BertWordPieceLowerCase` / `BertWordPieceCase`, or a name with `uncased`/`cased`."""
    for value in (tokenizer_type, name):
        if not isinstance(value, str):
            continue
        v = value.lower()
        if "lowercase" in v or "uncased" in v:
            return True
        if v.endswith("case") or v.endswith("cased"):
            return False
    return None


def _version(value: Any, where: Path) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{where}: checkpoint_version {value!r} is not a number") from exc


def _read_torch_file(path: Path, trust: bool) -> tuple[Any, str | None]:
    """The unpickled object of a torch file, or of the checkpoint inside NGC's zip of a release."""
    if zipfile.is_zipfile(path) and not is_torch_zip(path):
        for suffix in ("model_optim_rng.pt", "MegatronBERT.pt"):
            found = zip_member(path, suffix)
            if found is not None:
                name, data = found
                return load_member(data, path, trust=trust), name
        raise ModelError(f"{path}: a zip without model_optim_rng.pt or MegatronBERT.pt; not a Megatron-LM release")
    return load_checkpoint(path, path, trust=trust), None


def load_torch_checkpoint(path: Path, *, trust: bool = False) -> SourceCheckpoint:
    """A Megatron-LM dict (`model_optim_rng.pt`, NeMo-wrapped, NGC's zip) or a flat NeMo `MegatronBERT.pt`."""
    obj, member = _read_torch_file(path, trust)
    if not isinstance(obj, dict):
        raise ModelError(f"{path}: expected a dict of weights, found {type(obj).__name__}")
    if "model" in obj and isinstance(obj["model"], dict):
        flat = _flatten(obj["model"])
        weights, ignored = canonicalize(flat, path)
        args = obj.get("args")
        config = dict(vars(args)) if args is not None and hasattr(args, "__dict__") else {}
        if "checkpoint_version" in obj and obj["checkpoint_version"] is not None:
            version, origin = _version(obj["checkpoint_version"], path), "checkpoint"
        else:
            version, origin = 0.0, "absent in checkpoint: Megatron-LM reads that as 0"
        gelu, gelu_origin = gelu_form(config)
        return SourceCheckpoint(
            layout="megatron-lm" if member is None else "megatron-lm (NGC zip)",
            path=path,
            weights=weights,
            checkpoint_version=version,
            version_origin=origin,
            config=config,
            lower_case=_lower_case_from_tokenizer(config.get("tokenizer_type")),
            ignored_keys=ignored,
            member=member,
            gelu=gelu,
            gelu_origin=gelu_origin,
        )
    state = obj.get("state_dict", obj)  # PyTorch Lightning wraps weights in "state_dict"
    flat = _flatten(state)
    weights, ignored = canonicalize(flat, path)
    if obj.get("checkpoint_version") is not None:
        version, origin = _version(obj["checkpoint_version"], path), "checkpoint"
    else:
        version, origin = 0.0, "absent in flat NeMo state dict: NeMo's MegatronBertEncoder read that as 0"
    gelu, gelu_origin = gelu_form({})
    return SourceCheckpoint(
        layout="nemo-pt",
        path=path,
        weights=weights,
        checkpoint_version=version,
        version_origin=origin,
        ignored_keys=ignored,
        member=member,
        gelu=gelu,
        gelu_origin=gelu_origin,
    )


def _is_nemo_archive(file: Path) -> bool:
    if file.suffix == NEMO_SUFFIX:
        return True
    if not tarfile.is_tarfile(file):
        return False
    with tarfile.open(file, "r:*") as tar:
        return any(Path(m.name).name.endswith("model_config.yaml") for m in tar.getmembers())


def _version_file(text: str, where: str) -> float:
    """The number in a NeMo `*_megatron_checkpoint_version.json` (a bare number or an object holding one)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(f"{where}: not valid JSON: {exc}") from exc
    if isinstance(value, dict):
        value = value.get("checkpoint_version", value.get("version"))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ModelError(f"{where}: states no checkpoint version number (found {text.strip()[:80]!r})")
    return float(value)


def load_nemo_archive(path: Path, *, trust: bool = False) -> SourceCheckpoint:
    """A `.nemo` tar: config YAML for architecture and QKV layout, weights, bundled vocab, version file."""
    import yaml

    try:
        tar = tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError) as exc:
        raise ModelError(f"{path}: not a readable .nemo (tar) archive: {exc}") from exc
    with tar:
        cfg_member = tar_member(tar, "model_config.yaml", path)
        if cfg_member is None:
            raise ModelError(f"{path}: .nemo archive has no model_config.yaml")
        config = yaml.safe_load(read_tar_member(tar, cfg_member, path).decode("utf-8")) or {}
        if not isinstance(config, dict):
            raise ModelError(f"{path}: model_config.yaml is not a mapping")
        if isinstance(config.get("language_model"), dict):  # NeMo 1.0 task models nest the encoder's settings
            config = {**config["language_model"], **{k: v for k, v in config.items() if k != "language_model"}}
        weights_member = tar_member(tar, "model_weights.ckpt", path)
        if weights_member is None:
            if any("model_weights/" in m.name for m in tar.getmembers()):
                raise ModelError(
                    f"{path}: distributed (zarr/torch_dist) .nemo checkpoints are not supported; "
                    "save with a single model_weights.ckpt"
                )
            raise ModelError(f"{path}: .nemo archive has no model_weights.ckpt")
        state = load_member(read_tar_member(tar, weights_member, path), path, trust=trust)
        version_member = tar_member(tar, "_megatron_checkpoint_version.json", path)
        stated_version = None
        if version_member is not None:
            where = f"{path} member {version_member.name}"
            stated_version = _version_file(read_tar_member(tar, version_member, path).decode("utf-8"), where)
        tok = config.get("tokenizer") or {}
        vocab_text = vocab_name = None
        vocab_ref = tok.get("vocab_file") if isinstance(tok, dict) else None
        if isinstance(vocab_ref, str) and vocab_ref:
            name = Path(vocab_ref.split("nemo:", 1)[-1]).name
            member = tar_member(tar, name, path)
            if member is not None:
                vocab_text = read_tar_member(tar, member, path).decode("utf-8")
                vocab_name = member.name
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    flat = _flatten(state)
    weights, ignored = canonicalize(flat, path)
    if stated_version is not None:
        version, origin = stated_version, f"{version_member.name} in the .nemo archive"
    elif "megatron_legacy" in config:
        legacy = bool(config["megatron_legacy"])
        version, origin = (
            (0.0, "model_config.yaml megatron_legacy: true")
            if legacy
            else (2.0, "model_config.yaml megatron_legacy: false")
        )
    elif any(k.startswith("model.language_model.") for k in flat):
        version, origin = (
            2.0,
            "NeMo's own attention layout [heads, 3, head_dim] (no megatron_legacy in model_config.yaml)",
        )
    else:
        # NeMo 1.0 NLP models wrapped Megatron-LM's encoder (`bert_model.language_model.*`) and read
        # the fused QKV with Megatron-LM's version rules, defaulting to 0 without a version file.
        version, origin = 0.0, "NeMo 1.0 wrapped Megatron-LM encoder, no version file: read as 0 like NeMo did"
        log.warning("%s: %s; check the converted model, or pass --checkpoint-version", path, origin)
    gelu, gelu_origin = gelu_form(config)
    return SourceCheckpoint(
        layout="nemo-archive",
        path=path,
        weights=weights,
        checkpoint_version=version,
        version_origin=origin,
        config=config,
        lower_case=_lower_case_from_tokenizer(tok.get("type"), tok.get("tokenizer_name"))
        if isinstance(tok, dict)
        else None,
        vocab_text=vocab_text,
        vocab_name=vocab_name,
        ignored_keys=ignored,
        member=weights_member.name,
        gelu=gelu,
        gelu_origin=gelu_origin,
    )


def load_source_checkpoint(path: str | Path, *, trust: bool = False) -> SourceCheckpoint:
    """Read any supported source; the layout is told by content (tar, zip, torch pickle), not name.

    `trust=True` unpickles without the allow-list (`biomodels.models.checkpoint_files`)."""
    file = find_checkpoint_file(path)
    if _is_nemo_archive(file):
        src = load_nemo_archive(file, trust=trust)
    else:
        src = load_torch_checkpoint(file, trust=trust)
    if src.ignored_keys:
        log.info("%s: skipped %d non-model keys (e.g. %s)", file, len(src.ignored_keys), src.ignored_keys[0])
    return src


def layer_indices(weights: dict[str, Any]) -> list[int]:
    return sorted({int(m.group(1)) for k in weights if (m := _LAYER_KEY.match(k))})


__all__ = [
    "SourceCheckpoint",
    "canonical_name",
    "find_checkpoint_file",
    "layer_indices",
    "load_source_checkpoint",
]
