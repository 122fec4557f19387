"""Where models live and how a name or path becomes a HuggingFace MegatronBert folder.

Models are local files only. The models folder is `$BIOMODELS_HOME` (default
`~/.cache/biomed-pipelines/models`), one sub-folder per preset. A preset folder is *present* when
it holds a converted HuggingFace model (config.json + weights + vocab.txt) or the original
checkpoint plus vocab.txt; the latter is converted in place on first use.

`resolve_model` accepts a preset name or a path to: a HuggingFace-format folder (ours, or a public
conversion such as EMBO/BioMegatron345mUncased), a Megatron-LM checkpoint file or folder, a NeMo
`MegatronBERT.pt`, or a `.nemo` archive.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from biomodels.models.checkpoint_conversion import convert_checkpoint, read_conversion_record, sha256_file
from biomodels.models.megatron_checkpoint import NEMO_SUFFIX, find_checkpoint_file
from biomodels.models.presets import PRESETS, ModelPreset, get_preset
from corpora.errors import ModelError

log = logging.getLogger(__name__)

HOME_ENV = "BIOMODELS_HOME"
DEFAULT_HOME = Path("~/.cache/biomed-pipelines/models")
HF_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
CUSTOM_CONFIG_FILES = ("bert_config.json", "megatron_config.json", "model_config.yaml", "config.yaml")
CONVERTED_DIR = "converted"


def models_home() -> Path:
    return Path(os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser()


def is_huggingface_dir(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file() and any((path / f).is_file() for f in HF_WEIGHT_FILES)


def _check_huggingface_dir(path: Path) -> None:
    """A HF folder must be a Megatron-BERT with a vocab.txt (the tokenizer is built from it)."""
    try:
        cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path / 'config.json'}: unreadable model config: {exc}") from exc
    if cfg.get("model_type") != "megatron-bert":
        raise ModelError(f"{path / 'config.json'}: model_type is {cfg.get('model_type')!r}, expected 'megatron-bert'")
    if not (path / "vocab.txt").is_file():
        raise ModelError(f"{path}: HuggingFace model folder without vocab.txt; put the model's vocab.txt there")


def _raw_checkpoints(folder: Path, preset: ModelPreset) -> list[Path]:
    """Checkpoint files of a preset folder (also in release/mp_rank_00/), expected names first."""
    found: list[Path] = []
    for pattern in preset.checkpoint_files:
        found.extend(sorted(p for p in folder.rglob(pattern) if p.is_file()))
    return found


def _missing_message(preset: ModelPreset, folder: Path) -> str:
    first = preset.checkpoint_files[0]
    extra = " and your model's config (bert_config.json or model_config.yaml)" if preset.custom else ""
    return (
        f"model {preset.name} is not installed: put {first} and {preset.vocab_file}{extra} in {folder}/ "
        f"(source: {preset.source}), or convert a checkpoint you have with "
        f"`biomed models convert SRC {folder}/ --preset {preset.name}`"
    )


@dataclass(frozen=True)
class ModelStatus:
    """One line of `biomed models list`."""

    preset: str
    present: bool
    form: str  # "huggingface" | "checkpoint" | "missing"
    path: Path
    expected: str
    files: tuple[str, ...] = ()


def model_status(preset: ModelPreset, home: Path | None = None) -> ModelStatus:
    folder = (home or models_home()) / preset.name
    if is_huggingface_dir(folder) and (folder / "vocab.txt").is_file():
        files = tuple(sorted(f.name for f in folder.iterdir() if f.is_file()))
        return ModelStatus(preset.name, True, "huggingface", folder, preset.expected_files, files)
    if folder.is_dir():
        found = _complete_checkpoint(folder, preset)
        if found is not None:
            ckpt, extras = found
            files = (str(ckpt.relative_to(folder)), *(str(e.relative_to(folder)) for e in extras))
            return ModelStatus(preset.name, True, "checkpoint", folder, preset.expected_files, files)
    return ModelStatus(preset.name, False, "missing", folder, preset.expected_files)


def _complete_checkpoint(folder: Path, preset: ModelPreset) -> tuple[Path, list[Path]] | None:
    """(checkpoint, companion files) when the folder holds all a preset needs, else None.

    A .nemo bundles vocabulary and config; other checkpoints need vocab.txt, and for the custom
    presets the user's config file, beside them.
    """
    for ckpt in _raw_checkpoints(folder, preset):
        if ckpt.suffix == NEMO_SUFFIX:
            return ckpt, []
        vocab = folder / preset.vocab_file
        if not vocab.is_file():
            continue
        if not preset.custom:
            return ckpt, [vocab]
        config = next((folder / n for n in CUSTOM_CONFIG_FILES if (folder / n).is_file()), None)
        if config is not None:
            return ckpt, [vocab, config]
    return None


def list_models(home: Path | None = None) -> list[ModelStatus]:
    """Every preset with whether its files are present in the models folder, and where."""
    return [model_status(p, home) for p in PRESETS.values()]


@dataclass(frozen=True)
class ResolvedModel:
    """A model located on disk; `kind` says whether it still needs converting."""

    kind: str  # "huggingface" | "megatron-checkpoint" | "nemo-archive"
    path: Path  # the HF folder, or the checkpoint file
    preset: ModelPreset | None = None
    folder: Path | None = None  # the preset folder a checkpoint sits in (converted in place)
    config: Path | None = None  # the user's architecture config for custom presets

    @property
    def needs_conversion(self) -> bool:
        return self.kind != "huggingface"


def _checkpoint_kind(file: Path) -> str:
    return "nemo-archive" if file.suffix == NEMO_SUFFIX else "megatron-checkpoint"


def resolve_model(name_or_path: str | Path, *, home: Path | None = None) -> ResolvedModel:
    """Locate a model by preset name or path; a missing one raises ModelError saying what to put where."""
    text = str(name_or_path)
    p = Path(text).expanduser()
    if p.exists():
        if is_huggingface_dir(p):
            _check_huggingface_dir(p)
            return ResolvedModel("huggingface", p)
        file = find_checkpoint_file(p)
        return ResolvedModel(_checkpoint_kind(file), file)
    if text not in PRESETS:
        raise ModelError(
            f"{text}: no such model folder or checkpoint file, and not a preset name (presets: {', '.join(PRESETS)})"
        )
    preset = get_preset(text)
    folder = (home or models_home()) / preset.name
    if is_huggingface_dir(folder):
        _check_huggingface_dir(folder)
        return ResolvedModel("huggingface", folder, preset, folder)
    found = _complete_checkpoint(folder, preset) if folder.is_dir() else None
    if found is None:
        raise ModelError(_missing_message(preset, folder))
    ckpt, extras = found
    config = next((e for e in extras if e.name in CUSTOM_CONFIG_FILES), None)
    return ResolvedModel(_checkpoint_kind(ckpt), ckpt, preset, folder, config)


def ensure_huggingface(
    name_or_path: str | Path,
    *,
    preset: str | None = None,
    vocab: str | Path | None = None,
    checkpoint_version: float | None = None,
    config: str | Path | None = None,
    lower_case: bool | None = None,
    gelu: str | None = None,
    trust_checkpoint: bool = False,
    home: Path | None = None,
) -> tuple[Path, ResolvedModel]:
    """A HuggingFace folder for any accepted model, converting (once) when needed.

    Preset folders are converted in place; other checkpoints go to
    `$BIOMODELS_HOME/converted/<name>-<sha256[:12]>/` and are reused while the source and the
    conversion choices given here (checkpoint version, GeLU form) are unchanged.
    """

    resolved = resolve_model(name_or_path, home=home)
    if not resolved.needs_conversion:
        return resolved.path, resolved
    use_preset = preset or (resolved.preset.name if resolved.preset else None)
    use_config = config or resolved.config
    if resolved.folder is not None:
        dst = resolved.folder
    else:
        digest = sha256_file(resolved.path)
        dst = (home or models_home()) / CONVERTED_DIR / f"{resolved.path.stem}-{digest[:12]}"
        record = read_conversion_record(dst) if dst.is_dir() else None
        if record and record.get("source_sha256") == digest and is_huggingface_dir(dst):
            wanted = float(checkpoint_version) if checkpoint_version is not None else None
            same_version = wanted is None or record.get("checkpoint_version") == wanted
            if same_version and (gelu is None or record.get("gelu") == gelu):
                log.info("reusing conversion of %s in %s", resolved.path, dst)
                return dst, resolved
    log.info("converting %s to a HuggingFace folder in %s", resolved.path, dst)
    out = convert_checkpoint(
        resolved.path,
        dst,
        preset=use_preset,
        vocab=vocab,
        checkpoint_version=checkpoint_version,
        config=use_config,
        lower_case=lower_case,
        gelu=gelu,
        trust_checkpoint=trust_checkpoint,
    )
    return out, resolved


__all__ = [
    "HOME_ENV",
    "ModelStatus",
    "ResolvedModel",
    "ensure_huggingface",
    "is_huggingface_dir",
    "list_models",
    "model_status",
    "models_home",
    "resolve_model",
]
