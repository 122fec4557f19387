"""The ingest flow over many inputs: bad files are reported one by one and the rest is kept."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from corpora.dataset.store import open_dataset
from corpora.errors import PartialFailure
from pipelines.flows.ingest import ingest_flow


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
        '<?xml version="1.0"?>\n<PubmedArticleSet>\n<PubmedArticle><MedlineCitation>\n'
        "<PMID>1</PMID>\n</PubmedArticleSet>\n"
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
