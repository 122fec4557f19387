"""`unchanged_run`: a rerun of `biomed annotate` with nothing to do is found before Prefect starts."""

from __future__ import annotations

import shutil
from pathlib import Path

from corpora.dataset.store import DatasetStore, shard_name_for
from pipelines.flows.annotate_inputs import unchanged_run


def test_a_finished_run_is_unchanged_until_its_input_changes(
    samples: Path, tmp_path: Path, tiny_models: dict[str, str], prefect_harness: None
) -> None:
    from pipelines.flows.annotate import annotate_flow

    src = tmp_path / "CDR_dev_sample.PubTator.txt"
    shutil.copy(samples / "bc5cdr" / "CDR_dev_sample.PubTator.txt", src)
    out = tmp_path / "annotated"
    assert unchanged_run([str(src)], str(out), tiny_models["ner"]) is None  # never run
    annotate_flow([str(src)], str(out), tiny_models["ner"], progress=False)
    assert unchanged_run([str(src)], str(out), tiny_models["ner"]) == [shard_name_for(src)]
    assert unchanged_run([str(src)], str(out), tiny_models["ner"], tiny_models["re"]) is None  # another model
    assert unchanged_run([str(src)], str(out), tiny_models["ner"], precision="bf16") is None  # another precision
    src.write_text(src.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    assert unchanged_run([str(src)], str(out), tiny_models["ner"]) is None  # changed input


def test_the_precision_is_part_of_what_makes_a_shard_current(
    samples: Path, tmp_path: Path, tiny_models: dict[str, str], prefect_harness: None
) -> None:
    """fp32 (auto on CPU) is not named in the producer, so older datasets stay current; bf16 is."""
    from pipelines.flows.annotate import annotate_flow

    src = tmp_path / "CDR_dev_sample.PubTator.txt"
    shutil.copy(samples / "bc5cdr" / "CDR_dev_sample.PubTator.txt", src)
    out = tmp_path / "annotated"
    annotate_flow([str(src)], str(out), tiny_models["ner"], progress=False)
    shard = shard_name_for(src)
    assert "precision" not in DatasetStore(out).entries()[shard].producer
    summary = annotate_flow([str(src)], str(out), tiny_models["ner"], progress=False, precision="bf16")
    assert [r["status"] for r in summary.reports] == ["written"]  # redone, not skipped as unchanged
    assert DatasetStore(out).entries()[shard].producer["precision"] == "bf16"
    assert unchanged_run([str(src)], str(out), tiny_models["ner"], precision="bf16") == [shard]
    assert unchanged_run([str(src)], str(out), tiny_models["ner"]) is None
