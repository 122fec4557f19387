"""README's training examples, run as written: a user who copies them gets a model that finds entities."""

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


def test_cli_scratch_example_uses_the_python_example_settings() -> None:
    """The `biomed train` bullet and the Python example describe the same small scratch model, so the
    run below answers for both."""
    cli = re.search(r"`--model scratch --layers (\d+) --hidden (\d+) --heads (\d+)", README)
    assert cli, "README's train bullet lost its scratch example"
    block = python_block_with('"scratch"')
    settings = re.search(r'\{"layers": (\d+), "hidden": (\d+), "heads": (\d+)\}', block)
    assert settings and settings.groups() == cli.groups()


@pytest.mark.timeout(900)
def test_python_training_example_finds_entities(tmp_path, monkeypatch) -> None:
    """The README's Python block, executed from a folder holding the bundled samples."""
    (tmp_path / "corpora").symlink_to(ROOT / "corpora")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(python_block_with('"scratch"'), "README.md", "exec"), namespace)
    from biomodels.training import evaluate

    metrics = evaluate("ner", "models/ner", ["corpora/samples/bc5cdr/CDR_dev_sample.PubTator.txt"])
    assert metrics["f1"] > 0.3, metrics
    assert namespace["annotated"] and any(doc.entities for doc in namespace["annotated"])
