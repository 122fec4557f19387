"""Ingest: library function per file, the Prefect flow over the bundled samples, bad input, reruns."""

from __future__ import annotations

import gzip
import json
import re
import shutil
from pathlib import Path

import pytest

from corpora.dataset.ingest import ingest_file
from corpora.dataset.store import DatasetStore, open_dataset, shard_name_for
from corpora.errors import PartialFailure
from corpora.formats.registry import detect_format, expand_inputs
from pipelines.cli import main as cli_main


def test_detect_format_from_content(samples: Path, tmp_path: Path) -> None:
    expected = {
        "pubmed/medline16n0902.xml.gz": "pubmed-xml",
        "pubmed/pubmed4.xml": "pubmed-xml",
        "ncbi-disease/NCBI_train_sample.PubTator.txt": "pubtator",
        "ncbi-disease/train_sample.tsv": "conll",
        "jnlpba-conll/devel_sample.tsv": "conll",
        "bc5cdr/CDR_train_sample.BioC.xml": "bioc-xml",
        "bioc/everything.json": "bioc-json",
        "chemprot/chemprot_sample_abstracts.tsv": "chemprot",
        "brat/example1.ann": "brat",
    }
    for rel, fmt in expected.items():
        assert detect_format(samples / rel) == fmt, rel
    # names do not decide: a PubTator file called .xml and a gzip without .gz are still recognised
    disguised = tmp_path / "pubtator.xml"
    shutil.copy(samples / "ncbi-disease/NCBI_devel_sample.PubTator.txt", disguised)
    assert detect_format(disguised) == "pubtator"
    plain = tmp_path / "medline"
    shutil.copy(samples / "pubmed/test_current_medline.xml.gz", plain)
    assert detect_format(plain) == "pubmed-xml"


def test_expand_inputs_skips_companions_and_docs(samples: Path) -> None:
    files = {p.relative_to(samples).as_posix() for p in expand_inputs([samples])}
    assert "chemprot/chemprot_sample_abstracts.tsv" in files
    assert not any(f.endswith(("_entities.tsv", "_relations.tsv", "_gold_standard.tsv")) for f in files)
    assert "brat/example1.ann" in files and "brat/example1.txt" not in files
    assert not any(Path(f).name.upper().startswith(("LICENSE", "README", "SOURCE")) for f in files)
    with pytest.raises(Exception, match="no such file"):
        expand_inputs([samples / "nothing-*.xml"])


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


def _bad_inputs(samples: Path, root: Path) -> dict[str, Path]:
    root.mkdir()
    good_gz = (samples / "pubmed/test_current_medline.xml.gz").read_bytes()
    bad = {
        "malformed": root / "malformed.xml",
        "truncated": root / "truncated.xml.gz",
        "unknown": root / "unknown.dat",
        "offsets": root / "offsets.PubTator.txt",
        "empty": root / "empty.txt",
        "latin1": root / "latin1.PubTator.txt",
    }
    bad["malformed"].write_text(
        '<?xml version="1.0"?>\n<PubmedArticleSet>\n<PubmedArticle><MedlineCitation>\n<PMID>1</PMID>\n</PubmedArticleSet>\n'
    )
    bad["truncated"].write_bytes(good_gz[: len(good_gz) // 2])
    bad["unknown"].write_text("this is neither a corpus nor a format\n just prose, two lines\n")
    pubtator = (samples / "ncbi-disease/NCBI_devel_sample.PubTator.txt").read_text()
    bad["offsets"].write_text(
        re.sub(
            r"^(\d+\t)(\d+)(\t)",
            lambda m: f"{m.group(1)}{int(m.group(2)) + 1}{m.group(3)}",
            pubtator,
            count=1,
            flags=re.M,
        )
    )
    bad["empty"].write_bytes(b"")
    bad["latin1"].write_bytes("123|t|Caf\u00e9 au lait spots\n123|a|Pigmented macules.\n\n".encode("latin-1"))
    return bad


def test_flow_reports_bad_files_and_keeps_the_rest(samples: Path, tmp_path: Path, prefect_harness: None) -> None:
    from pipelines.flows.ingest import ingest_flow

    out = tmp_path / "ds"
    good = samples / "ncbi-disease/NCBI_devel_sample.PubTator.txt"
    # a previous good version of a file that is broken now: its shard must survive the failed rerun
    work = tmp_path / "in"
    bad = _bad_inputs(samples, work)
    shutil.copy(good, work / "was-good.PubTator.txt")
    ingest_flow([str(work / "was-good.PubTator.txt")], str(out), progress=False)
    before = sorted(d.document_id for d in open_dataset(out).iter_documents())
    broken = re.sub(r"^(\d+)\t(\d+)\t", r"\1\tabc\t", good.read_text(), count=1, flags=re.M)
    (work / "was-good.PubTator.txt").write_text(broken)
    with pytest.raises(PartialFailure) as info:
        ingest_flow([str(work), str(samples / "chemprot")], str(out), progress=False)
    summary = info.value.summary
    failed = {Path(r["path"]).name: r["error"] for r in summary.failed}
    assert set(failed) == {p.name for p in bad.values()} | {"was-good.PubTator.txt"}
    assert "malformed.xml" in failed["malformed.xml"] and "line" in failed["malformed.xml"]
    assert "gzip" in failed["truncated.xml.gz"]
    assert "format" in failed["unknown.dat"]
    assert "line" in failed["offsets.PubTator.txt"] and "select" in failed["offsets.PubTator.txt"]
    assert "empty" in failed["empty.txt"]
    assert "UTF-8" in failed["latin1.PubTator.txt"] and "line 1" in failed["latin1.PubTator.txt"]
    store = open_dataset(out)
    assert [r["status"] for r in summary.written] == ["written"]  # chemprot
    assert sorted(d.document_id for d in store.iter_documents() if d.source.format == "pubtator") == before
    assert store.count_rows() == len(before) + 50
    assert not list((out / ".staging").glob("*"))


def test_cli_ingest_exit_codes_and_rerun(
    samples: Path, tmp_path: Path, prefect_harness: None, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "ds"
    args = [
        "ingest",
        str(samples / "pubmed"),
        str(samples / "bc5cdr/CDR_train_sample.BioC.xml"),
        "--out",
        str(out),
        "--no-progress",
    ]
    assert cli_main(args) == 0
    text = capsys.readouterr().out
    assert "written" in text and str(out) in text
    manifest = (out / "manifest.json").read_text()
    assert "source_sha256" in manifest and "code_version" in manifest
    stamps = {p: p.stat().st_mtime_ns for p in (out / "data").iterdir()}
    assert cli_main(args) == 0
    assert "0 written" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in (out / "data").iterdir()} == stamps
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert cli_main(["ingest", str(empty), "--out", str(out), "--no-progress"]) == 1
    assert "empty" in capsys.readouterr().err
    assert cli_main(["ingest", str(tmp_path / "missing.xml"), "--out", str(out)]) == 1


def test_cli_offset_mismatch_policy(
    samples: Path, tmp_path: Path, prefect_harness: None, capsys: pytest.CaptureFixture
) -> None:
    bioc = tmp_path / "in" / "cdr.BioC.xml"
    bioc.parent.mkdir()
    raw = (samples / "bc5cdr/CDR_train_sample.BioC.xml").read_text(encoding="utf-8")
    assert raw.count('<location offset="49" length="9"/>') == 1  # "clonidine" of document 227508
    bioc.write_text(
        raw.replace('<location offset="49" length="9"/>', '<location offset="48" length="9"/>'), encoding="utf-8"
    )
    pubtator = samples / "ncbi-disease/NCBI_devel_sample.PubTator.txt"
    out = tmp_path / "ds"
    base = ["ingest", str(bioc), str(pubtator), "--out", str(out), "--no-progress"]

    assert cli_main(base) == 1  # default: the file with the bad annotation fails, the other is written
    err = capsys.readouterr().err
    assert "cdr.BioC.xml" in err and "227508" in err
    assert [p.stem for p in (out / "data").iterdir()] == [shard_name_for(pubtator)]

    assert cli_main([*base, "--on-offset-mismatch", "skip"]) == 0
    assert "1 written" in capsys.readouterr().out  # the PubTator shard is unchanged: not redone
    (doc,) = [d for d in open_dataset(out).iter_documents() if d.document_id == "227508"]
    assert "clonidine" not in [t for e in doc.entities for t in e.text][:2]
    assert json.loads(doc.metadata.extra)["bioc"]["skipped"] == [
        {"id": "1", "text": "clonidine", "offsets": [[48, 57]]}
    ]
    assert cli_main([*base, "--on-offset-mismatch", "skip"]) == 0
    assert "0 written" in capsys.readouterr().out

    # back to the strict default: the option is part of the shard's fingerprint, so the file is
    # read again, fails, and the shard written with "skip" stays as it was
    shard = out / "data" / f"{shard_name_for(bioc)}.parquet"
    stamp = shard.stat().st_mtime_ns
    assert cli_main(base) == 1
    assert shard.stat().st_mtime_ns == stamp
