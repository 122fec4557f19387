"""The shipped models: `default` as a model name, fp16 export, and what the shipped files hold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from biomodels.models import shipped
from biomodels.models.model_dir import load_model_dir
from biomodels.models.shipped import export_fp16, resolve_model_path, shipped_model_dir
from corpora.errors import ModelError

SHIPPED_LIMIT_BYTES = 60_000_000


def test_default_means_the_shipped_model_of_the_task() -> None:
    assert resolve_model_path("default", "ner") == str(shipped.SHIPPED_DIR / "ner")
    assert resolve_model_path("default", "re") == str(shipped.SHIPPED_DIR / "re")
    assert resolve_model_path("models/mine", "ner") == "models/mine"
    assert resolve_model_path(None, "re") is None


def test_a_missing_shipped_model_says_how_to_rebuild_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(shipped, "SHIPPED_DIR", tmp_path)
    with pytest.raises(ModelError, match="make models"):
        shipped_model_dir("ner")
    with pytest.raises(ModelError, match="no shipped model for task 'qa'"):
        shipped_model_dir("qa")


def test_fp16_export_halves_the_weights_and_loads_back(tiny_models, tmp_path) -> None:
    src = Path(tiny_models["ner"])
    dst = export_fp16(src, tmp_path / "ner")
    full, half = load_file(str(src / "model.safetensors")), load_file(str(dst / "model.safetensors"))
    assert full.keys() == half.keys()
    assert all(t.dtype == torch.float16 for t in half.values())
    for key in full:
        torch.testing.assert_close(half[key].float(), full[key], atol=1e-3, rtol=1e-3)
    loaded = load_model_dir(dst, "ner")
    assert next(loaded.model.parameters()).dtype == torch.float32
    assert json.loads((dst / "biomed.json").read_text())["shipped"]["dtype"] == "float16"
    assert not (dst / "checkpoint").exists()


def test_fp16_export_refuses_weights_out_of_fp16_range(tiny_models, tmp_path) -> None:
    from safetensors.torch import save_file

    src = tmp_path / "big"
    src.mkdir()
    save_file({"w": torch.tensor([1e6])}, str(src / "model.safetensors"))
    (src / "biomed.json").write_text("{}")
    with pytest.raises(ModelError, match="does not fit in fp16"):
        export_fp16(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_shipped_models_are_small_fp16_and_carry_their_provenance() -> None:
    total = 0
    for task in ("encoder", "ner", "re"):
        folder = shipped_model_dir(task)
        weights = load_file(str(folder / "model.safetensors"))
        assert {t.dtype for t in weights.values() if t.is_floating_point()} == {torch.float16}
        total += (folder / "model.safetensors").stat().st_size
        meta = json.loads((folder / "biomed.json").read_text())
        assert meta["command"].startswith("biomed ") and meta["commit"]
        files = meta["training_data"]["files"] if task == "encoder" else meta["training_data"]["train"]
        assert files and all(len(f["sha256"]) == 64 for f in files)
        raw = [f.get("origin", {}).get("path", f["path"]) for f in files]
        assert not any("test" in Path(p).name.lower() for p in raw)  # test splits stay unseen
        assert not any("ddi" in p.lower() for p in raw)  # nor the non-commercial DDI corpus
        assert meta["config"]
    assert total <= SHIPPED_LIMIT_BYTES
    ner = json.loads((shipped_model_dir("ner") / "biomed.json").read_text())
    assert ner["labels"] == ["O", "B-Chemical", "I-Chemical", "B-Disease", "I-Disease"]
    assert ner["result"]["dev"]["f1"] > 0.5
    assert ner["source_model"]["resolved_dir"].endswith("encoder")
