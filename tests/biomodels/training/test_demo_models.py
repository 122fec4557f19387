"""Demo models: retrained only when their recipe (data bytes, settings, code) changes."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from biomodels.training import demo_models


def test_recipe_hash_is_stable_and_follows_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    before = demo_models.recipe_hash("ner")
    assert before == demo_models.recipe_hash("ner") and len(before) == 16
    assert before != demo_models.recipe_hash("re")
    changed = {**demo_models.RECIPES["ner"], "config": {**demo_models.RECIPES["ner"]["config"], "epochs": 99}}
    monkeypatch.setitem(demo_models.RECIPES, "ner", changed)
    assert demo_models.recipe_hash("ner") != before


def test_trained_once_then_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_train(task, model, train, dev, out, config):
        calls.append((task, model, [Path(p).name for p in train], config["epochs"]))
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "biomed.json").write_text("{}")
        return SimpleNamespace(headline={"f1": 0.5})

    monkeypatch.setattr(demo_models, "train", fake_train)
    out = tmp_path / "ner"
    first = demo_models.ensure_demo_model("ner", out)
    assert first == {"task": "ner", "out_dir": str(out), "status": "trained", "metrics": {"f1": 0.5}}
    assert calls == [("ner", "scratch", ["BC5CDR-IOB_train.tsv"], 3)]
    assert json.loads((out / "demo_recipe.json").read_text())["recipe"] == demo_models.recipe_hash("ner")
    again = demo_models.ensure_demo_model("ner", out)
    assert again["status"] == "reused" and again["metrics"] == {"f1": 0.5} and len(calls) == 1
    (out / "demo_recipe.json").write_text(json.dumps({"recipe": "something else"}))
    assert demo_models.ensure_demo_model("ner", out)["status"] == "trained" and len(calls) == 2
