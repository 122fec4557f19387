"""What a command checks before any flow starts: a user's mistake is one line, exit 2, at once.

Starting a flow costs seconds (Prefect's temporary API server) and a mistake found inside it
arrives as a logged traceback. Everything that can be known from the command line and the first
bytes of the files is checked here instead: inputs exist, a `--format` is plausible for each
file's first bytes, model folders hold a model of the right task, datasets are datasets, output
folders can be written and are not inside or equal to their input.

None of these checks import Prefect, torch or spaCy.
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

from biomodels.models import shipped
from corpora.errors import BiomedError, InputError, UsageError
from corpora.formats.registry import detect_format, expand_inputs

MODEL_TASK_NAMES = {"ner": "NER", "re": "relation extraction", "mlm": "pretrained encoder"}


def check_inputs(inputs: list[str], fmt: str = "auto") -> list[Path]:
    """Every input names something, and with `fmt` each file looks like that format."""
    for item in inputs:
        if not Path(item).exists() and not any(ch in item for ch in "*?["):
            raise UsageError(f"input {item} not found")
    try:
        files = expand_inputs(inputs)
    except InputError as exc:
        raise UsageError(str(exc)) from exc
    if fmt != "auto":
        for path in files:
            try:
                seen = detect_format(path)
            except BiomedError:
                continue  # undetectable content: the reader of `fmt` will say what is wrong
            if seen != fmt:
                raise UsageError(
                    f"{path} looks like {seen}, not {fmt} (its first bytes); "
                    f"leave out --format to detect it, or pass --format {seen}"
                )
    return files


def check_dataset(path: str) -> None:
    """`path` is a dataset folder written by `biomed ingest` / `preprocess` / `annotate`."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"dataset {path} not found")
    if not (p / "manifest.json").is_file() and not (p / "data").is_dir():
        raise UsageError(f"{path} is not a dataset folder (no manifest.json or data/); make one with `biomed ingest`")


def check_model_dir(path: str | None, task: str, option: str) -> None:
    """`path` (or `default`) holds a trained model of `task` (read from biomed.json; nothing loaded)."""
    if path is None:
        return
    is_default = path == shipped.DEFAULT_NAME
    folder = shipped.SHIPPED_DIR / shipped.SHIPPED[task] if is_default else Path(path)
    if not folder.is_dir():
        hint = "rebuild the shipped models with `make models`" if is_default else "train one with `biomed train`"
        raise UsageError(f"{option} {path}: no such model folder ({hint})")
    meta_path = folder / "biomed.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UsageError(f"{option} {path}: not a trained model folder (no readable biomed.json)") from None
    saved = meta.get("task") if isinstance(meta, dict) else None
    if saved != task:
        raise UsageError(
            f"{option} {path} holds a {MODEL_TASK_NAMES.get(str(saved), str(saved))} model, "
            f"not a {MODEL_TASK_NAMES[task]} model"
        )
    if not (folder / "model.safetensors").is_file():
        raise UsageError(f"{option} {path}: model.safetensors is missing")


def check_output(out: str, inputs: list[str] = ()) -> None:
    """`out` can be created or written, and is neither an input nor inside one (a folder, or the
    folder a glob searches: the next run would read the dataset's own files as input)."""
    p = Path(out).resolve()
    for item in inputs:
        src = Path(item).resolve()
        if src.is_file() and p == src:
            raise UsageError(f"--out {out} is the input file {item}; choose another")
        if src.is_dir() and (p == src or src in p.parents):
            raise UsageError(f"--out {out} is {'the input' if p == src else 'inside the input'} {item}; choose another")
        base = glob_base(item)
        if base is not None and (p == base or base in p.parents):
            raise UsageError(
                f"--out {out} is inside {base}, searched by the input glob {item} (the next run would read the "
                "dataset's own files as input); choose a folder outside it"
            )
    probe = p
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"--out {out}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: {probe} is not writable")


def glob_base(item: str) -> Path | None:
    """The folder a glob pattern searches (its leading parts without wildcards), or None for a plain path."""
    parts = Path(item).parts
    for i, part in enumerate(parts):
        if any(ch in part for ch in "*?["):
            return Path(*parts[:i]).resolve() if i else Path.cwd().resolve()
    return None


def check_paths_exist(items: list[str], option: str) -> None:
    """Each of `option`'s values is an existing file or folder, or a glob (matched later)."""
    for item in items:
        if not Path(item).exists() and not any(ch in item for ch in "*?["):
            raise UsageError(f"{option} {item}: not found")


def check_training_model(value: str, option: str = "--model") -> None:
    """`--model` of train/pretrain names something: scratch, default, an existing path or a preset
    (a preset's weights are looked for later, with a message saying where to put them)."""
    from biomodels.models.presets import PRESETS  # a table of names, no torch

    if value in ("scratch", "default") or Path(value).expanduser().exists() or value in PRESETS:
        return
    close = difflib.get_close_matches(value, list(PRESETS), n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    raise UsageError(
        f"{option} {value}: no such model folder or checkpoint file, and not a preset name; {hint}"
        f"(presets: {', '.join(PRESETS)}; or scratch, default)"
    )


def check_model_output(out: str, resume: bool, overwrite: bool) -> None:
    """A training run's `--out` is new or empty, unless the user asked to continue (`--resume`) or
    to write over what is there (`--overwrite`): a finished model is never replaced by accident."""
    check_output(out)
    p = Path(out)
    if resume or overwrite or not p.is_dir() or not any(p.iterdir()):
        return
    what = "a model" if (p / "model.safetensors").is_file() else "files"
    raise UsageError(
        f"--out {out} already holds {what}; pass --resume to continue its training, --overwrite to "
        "write over it, or choose another folder"
    )


__all__ = [
    "check_dataset",
    "check_inputs",
    "check_model_dir",
    "check_model_output",
    "check_output",
    "check_paths_exist",
    "check_training_model",
    "glob_base",
]
