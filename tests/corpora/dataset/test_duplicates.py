"""A document id repeated in one file (issue 14, item 4): MEDLINE's later record wins, within a file as
across files; other formats fail naming both lines unless --on-duplicate says last or keep."""

from __future__ import annotations

from pathlib import Path

import pytest

from corpora.dataset.duplicates import DuplicateDocumentError
from corpora.dataset.ingest import ingest_file
from corpora.dataset.store import DatasetStore
from corpora.errors import ConfigError
from tests.corpora.dataset.test_fault_points import citation, medline

DOC_A = "1|t|Aspirin and fever.\n1|a|Aspirin reduces fever.\n1\t0\t7\tAspirin\tChemical\tD001241\n\n"
DOC_B = "2|t|Lithium toxicity.\n2|a|Lithium is toxic.\n2\t0\t7\tLithium\tChemical\tD008094\n\n"
DOC_A2 = "1|t|Aspirin and headache.\n1|a|Aspirin relieves headache.\n"


def pubtator(tmp_path: Path) -> Path:
    path = tmp_path / "dup.PubTator.txt"
    path.write_text(DOC_A + DOC_B + DOC_A2 + "\n")
    return path


def titles(out: Path) -> list[tuple[str, str]]:
    return sorted((d.id, d.passages[0].text) for d in DatasetStore(out).iter_documents())


def test_pubtator_duplicate_fails_naming_both_lines(tmp_path: Path) -> None:
    src = pubtator(tmp_path)
    with pytest.raises(DuplicateDocumentError) as err:
        ingest_file(src, tmp_path / "ds")
    assert str(err.value) == (
        f"{src}, record 1: document id 1 appears twice (lines 1 and 9); remove one, or pass --on-duplicate "
        "last (the later one wins) or --on-duplicate keep (both kept)"
    )
    assert DatasetStore(tmp_path / "ds").shard_files() == []  # nothing partial


def test_on_duplicate_last_keeps_the_later_and_keep_keeps_both(tmp_path: Path) -> None:
    src = pubtator(tmp_path)
    report = ingest_file(src, tmp_path / "last", on_duplicate="last")
    assert titles(tmp_path / "last") == [("1", "Aspirin and headache."), ("2", "Lithium toxicity.")]
    assert (report.documents, report.entity_types) == (2, {"Chemical": 1})  # counts of what was kept
    ingest_file(src, tmp_path / "keep", on_duplicate="keep")
    assert [i for i, _ in titles(tmp_path / "keep")] == ["1", "1", "2"]
    # changing the rule redoes the shard; the same rule again skips it
    assert ingest_file(src, tmp_path / "keep", on_duplicate="last").status == "written"
    assert ingest_file(src, tmp_path / "keep", on_duplicate="last").status == "skipped"
    with pytest.raises(ConfigError, match="--on-duplicate must be one of error, last, keep"):
        ingest_file(src, tmp_path / "x", on_duplicate="first")


def test_medline_later_record_wins_within_a_file_and_after_reconcile(tmp_path: Path) -> None:
    base = medline(tmp_path / "m1.xml", [citation(11, "First"), citation(12, "Second"), citation(11, "First, again")])
    update = medline(tmp_path / "m2.xml", [citation(12, "Second, revised"), citation(12, "Second, revised twice")])
    out = tmp_path / "ds"
    assert ingest_file(base, out).documents == 2  # the default rule does not apply: MEDLINE defines it
    ingest_file(update, out)
    store = DatasetStore(out)
    store.reconcile()
    assert titles(out) == [("11", "First, again"), ("12", "Second, revised twice")]
    assert store.count_rows() == 2


def test_on_duplicate_last_applies_across_files_of_the_format(tmp_path: Path) -> None:
    """The later file by name wins among files ingested with `last`; under the default both stay."""
    first, second = tmp_path / "a.PubTator.txt", tmp_path / "b.PubTator.txt"
    first.write_text(DOC_A + DOC_B)
    second.write_text(DOC_A2 + "\n")
    for policy, expected in (
        ("last", [("1", "Aspirin and headache."), ("2", "Lithium toxicity.")]),
        ("error", [("1", "Aspirin and fever."), ("1", "Aspirin and headache."), ("2", "Lithium toxicity.")]),
    ):
        out = tmp_path / policy
        for src in (second, first):  # the order of ingestion does not matter, the names do
            ingest_file(src, out, on_duplicate=policy)
        store = DatasetStore(out)
        store.reconcile()
        assert titles(out) == expected
        assert store.reconciled()
        assert store.reconcile() == {}  # incremental: nothing new
