"""Ingesting one file into a shard: reruns on unchanged input, MEDLINE updates, exact offsets of every sample."""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

from corpora.dataset.ingest import ingest_file
from corpora.dataset.store import DatasetStore, open_dataset
from corpora.formats.registry import expand_inputs


def test_rerun_on_unchanged_input_does_no_work(samples: Path, tmp_path: Path) -> None:
    src = samples / "chemprot/chemprot_sample_abstracts.tsv"
    first = ingest_file(src, tmp_path)
    shard = DatasetStore(tmp_path).shard_path(first.shard)
    stamp = shard.stat().st_mtime_ns
    assert first.status == "written" and first.documents == 50
    second = ingest_file(src, tmp_path)
    assert second.status == "skipped" and second.documents == 50
    assert shard.stat().st_mtime_ns == stamp
    # a change to a companion file (not the main file) is a change of input
    copy = tmp_path / "cp"
    copy.mkdir()
    for f in samples.glob("chemprot/chemprot_sample_*.tsv"):
        shutil.copy(f, copy / f.name)
    ingest_file(copy / "chemprot_sample_abstracts.tsv", tmp_path)
    gold = copy / "chemprot_sample_gold_standard.tsv"
    lines = gold.read_text().splitlines(keepends=True)
    gold.write_text("".join(lines[:-1]))
    assert ingest_file(copy / "chemprot_sample_abstracts.tsv", tmp_path).status == "written"


def test_medline_update_deletes_and_replaces(samples: Path, tmp_path: Path) -> None:
    base = samples / "pubmed/medline16n0902.xml.gz"
    raw = gzip.open(base).read().decode()
    pmids = re.findall(r"<MedlineCitation [^>]*>\s*<PMID[^>]*>(\d+)</PMID>", raw)
    assert len(pmids) == 604
    first = re.search(r"<MedlineCitation [^>]*>.*?</MedlineCitation>", raw, re.S).group(0)
    revised = re.sub(
        r"<ArticleTitle>(.*?)</ArticleTitle>", r"<ArticleTitle>REVISED \1</ArticleTitle>", first, count=1, flags=re.S
    )
    update = tmp_path / "medline16n0903.xml"
    update.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<MedlineCitationSet>\n'
        + revised
        + f'\n<DeleteCitation><PMID Version="1">{pmids[5]}</PMID></DeleteCitation>\n</MedlineCitationSet>\n'
    )
    out = tmp_path / "ds"
    ingest_file(base, out)
    ingest_file(update, out)
    store = DatasetStore(out)
    removed = store.reconcile()
    assert sum(removed.values()) == 2  # pmids[5] deleted, pmids[0] replaced by its revision
    docs = list(store.iter_documents())
    ids = [d.document_id for d in docs]
    assert pmids[5] not in ids and ids.count(pmids[0]) == 1
    assert len(ids) == 604 - 1
    revised_doc = next(d for d in docs if d.document_id == pmids[0])
    assert revised_doc.passages[0].text.startswith("REVISED ")


def test_every_entity_of_every_sample_matches_its_text(samples: Path, tmp_path: Path) -> None:
    n_entities = 0
    for path in expand_inputs([samples]):
        ingest_file(path, tmp_path)
    for doc in open_dataset(tmp_path).iter_documents():
        text = doc.text
        for ent in doc.entities:
            for (start, end), fragment in zip(ent.offsets, ent.text):
                assert text[start:end] == fragment, (doc.source.path, doc.document_id, ent.id)
                n_entities += 1
    assert n_entities > 5000


def test_unchanged_inputs_answers_without_a_flow(samples: Path, tmp_path: Path) -> None:
    from corpora.dataset.ingest import unchanged_inputs

    src = tmp_path / "CDR_dev_sample.PubTator.txt"
    shutil.copy(samples / "bc5cdr" / "CDR_dev_sample.PubTator.txt", src)
    out = tmp_path / "ds"
    ingest_file(src, out)
    assert unchanged_inputs([str(src)], out) is None  # no manifest: the last run did not finish
    DatasetStore(out).write_manifest()
    assert unchanged_inputs([str(src)], out) == [src]
    assert unchanged_inputs([str(src)], out, on_mismatch="skip") == [src]  # PubTator's reader has no such option
    assert unchanged_inputs([str(src), str(samples / "pubmed" / "pubmed1.xml")], out) is None  # a new file
    src.write_text(src.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    assert unchanged_inputs([str(src)], out) is None  # changed bytes
