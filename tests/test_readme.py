"""README's training example, run as written: a user who copies it gets a model that finds entities."""

from __future__ import annotations

import re

import pytest

from tests.helpers.paths import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def python_block_with(marker: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    found = [b for b in blocks if marker in b]
    assert len(found) == 1, f"expected one README python block with {marker!r}, found {len(found)}"
    return found[0]


@pytest.mark.timeout(900)
def test_python_training_example_finds_entities(tmp_path, monkeypatch) -> None:
    """The README's Python block (a small scratch model on the bundled BC5CDR train split, then
    annotating), executed from a folder holding the bundled samples."""
    (tmp_path / "corpora").symlink_to(ROOT / "corpora")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(python_block_with("out = train("), "README.md", "exec"), namespace)
    from biomodels.training import evaluate

    metrics = evaluate("ner", "models/ner", ["corpora/samples/bc5cdr/CDR_dev_sample.PubTator.txt"])
    assert metrics["f1"] > 0.3, metrics
    assert any(e.annotator for doc in namespace["annotated"] for e in doc.entities)  # predicted ones
