"""The models that ship inside the package, and `default` as a model name.

Three model directories are committed under `biomodels/shipped/` (fp16 safetensors; each
`biomed.json` holds the command, commit, sha256 of every training file, settings and metrics):
- `encoder`: a small biomedical Megatron-BERT pretrained with `biomed pretrain` (its own
  WordPiece vocabulary) on non-test biomedical text;
- `ner`: Chemical and Disease NER fine-tuned from it on BC5CDR;
- `re`: chemical-induced-disease (CID) relations fine-tuned from it on BC5CDR.
`make models` rebuilds all three from the corpora (see the Makefile).

Wherever a model directory is asked for (`biomed annotate --ner default`, `biomed evaluate --model
default`, `biomed train ner --model default` for the encoder, the spaCy components' `model`),
the name `default` means the shipped model of that task.

Tested in `tests/biomodels/models/test_shipped.py`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from corpora.errors import ModelError
from corpora.file_modes import apply_umask

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "shipped"
DEFAULT_NAME = "default"
SHIPPED = {"encoder": "encoder", "mlm": "encoder", "ner": "ner", "re": "re"}
# what a shipped directory keeps of a trained one: enough to load, evaluate and audit it
SHIPPED_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "labels.json",
    "biomed.json",
    "metrics.json",
    "dev_metrics.json",
    "held_out_metrics.json",
    "training.png",
)


def shipped_model_dir(task: str) -> Path:
    """The shipped model directory of `task` (ner, re, or encoder/mlm); ModelError when absent."""
    if task not in SHIPPED:
        raise ModelError(f"no shipped model for task {task!r} (shipped: ner, re, encoder)")
    path = SHIPPED_DIR / SHIPPED[task]
    if not (path / "model.safetensors").is_file():
        raise ModelError(
            f"the shipped {task} model is missing from this install ({path}); rebuild it with `make models` "
            "or pass a model directory"
        )
    return path


def shipped_dev_metrics(path: str | Path) -> dict[str, float]:
    """The headline dev metrics a shipped model's biomed.json records (empty when none)."""
    meta = json.loads((Path(path) / "biomed.json").read_text(encoding="utf-8"))
    return dict((meta.get("result") or {}).get("dev") or {})


def resolve_model_path(value: str | Path | None, task: str) -> str | None:
    """`value` unchanged, except `default`, which becomes the shipped model directory of `task`."""
    if value is None or str(value) != DEFAULT_NAME:
        return None if value is None else str(value)
    return str(shipped_model_dir(task))


def export_fp16(src: str | Path, dst: str | Path) -> Path:
    """Copy the trained model directory `src` to `dst` with its weights stored as fp16 safetensors.

    fp16 halves the size (the weights are loaded back as fp32: `load_model_dir` asks for float32);
    every float tensor is checked to round-trip within fp16 range, so no weight becomes inf.
    """
    import torch
    from safetensors.torch import load_file, save_file

    src, dst = Path(src), Path(dst)
    weights = src / "model.safetensors"
    if not weights.is_file():
        raise ModelError(f"{weights}: missing; {src} is not a trained model directory")
    tensors = load_file(str(weights))
    half: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        if tensor.is_floating_point():
            converted = tensor.to(torch.float16)
            if not torch.isfinite(converted).all():
                raise ModelError(f"{weights}: {name} does not fit in fp16 (values beyond +-65504)")
            half[name] = converted.contiguous()
        else:
            half[name] = tensor
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(half, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    apply_umask(tmp / "model.safetensors")  # safetensors writes 0600
    for name in SHIPPED_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, tmp / name)
    meta_path = tmp / "biomed.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["shipped"] = {"dtype": "float16", "exported_from": str(src)}
    _add_origins(meta)
    meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)
    return dst


def _add_origins(meta: dict) -> None:
    """Name the raw input behind each dataset shard a model was trained on, where the record lacks it."""
    from biomodels.data.loading import shard_origin
    from corpora.dataset.store import DatasetStore

    data = meta.get("training_data") or {}
    for files in data.values():
        for record in files if isinstance(files, list) else ():
            path = Path(record.get("path", ""))
            if record.get("kind") == "parquet" and "origin" not in record and path.is_file():
                origin = shard_origin(DatasetStore(path.parent.parent), path.stem)
                if origin:
                    record["origin"] = origin


def main(argv: list[str] | None = None) -> int:
    """`python -m biomodels.models.shipped SRC DST`: what `make models` runs to ship a model."""
    import argparse

    p = argparse.ArgumentParser(description=export_fp16.__doc__)
    p.add_argument("src", help="trained model directory")
    p.add_argument("dst", help="shipped model directory to (re)write")
    args = p.parse_args(argv)
    out = export_fp16(args.src, args.dst)
    size = (out / "model.safetensors").stat().st_size
    print(f"shipped {args.src} -> {out} ({size / 1e6:.1f} MB of fp16 weights)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = [
    "DEFAULT_NAME",
    "SHIPPED_DIR",
    "export_fp16",
    "resolve_model_path",
    "shipped_dev_metrics",
    "shipped_model_dir",
]
