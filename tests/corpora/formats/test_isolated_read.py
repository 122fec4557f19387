"""Reading in a child process: same records as in-process, errors and warnings carried over, and a
native crash (a real SIGSEGV here) failing the one file with a ParserCrashError."""

from __future__ import annotations

import ctypes
import faulthandler
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from corpora.errors import DocumentTooLargeError, MalformedInputError, ParserCrashError
from corpora.formats import isolated_read
from corpora.formats.isolated_read import MEMORY_ENV, read_records
from corpora.formats.registry import get_reader
from corpora.schema import Deletion, Document
from tests.helpers.paths import ROOT

SAMPLES = ROOT / "corpora" / "samples"
MEDLINE16 = SAMPLES / "pubmed" / "medline16n0902.xml.gz"
CDR_XML = SAMPLES / "bc5cdr" / "CDR_train_sample.BioC.xml"


def _children() -> list[int]:
    """Forked children of this process still there (zombies included): child processes with this
    process's command line (a Prefect server the session started has its own)."""
    me = os.getpid()
    with open(f"/proc/{me}/cmdline", "rb") as fh:
        mine = fh.read()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    cmdline = fh.read()
            except OSError:
                continue
            if int(fields[1]) == me and cmdline in (mine, b""):  # a zombie has an empty cmdline
                found.append(int(entry))
    return found


@pytest.mark.parametrize(("path", "fmt"), [(MEDLINE16, "pubmed-xml"), (CDR_XML, "bioc-xml")])
def test_isolated_records_equal_in_process_records(path: Path, fmt: str) -> None:
    here = list(get_reader(fmt)(path))
    there = list(read_records(path, fmt))
    assert len(there) == len(here) > isolated_read.BATCH_SIZE or fmt == "bioc-xml"
    assert there == here
    assert any(isinstance(r, Document) for r in there)
    assert _children() == []


def test_text_formats_are_read_in_process(monkeypatch) -> None:
    monkeypatch.setattr(isolated_read.os, "fork", lambda: pytest.fail("forked for a pure-Python reader"))
    docs = list(read_records(SAMPLES / "ncbi-disease" / "NCBI_devel_sample.PubTator.txt", "pubtator"))
    assert docs and docs[0].entities


def test_an_input_error_arrives_with_its_path_line_and_record(tmp_path: Path) -> None:
    f = tmp_path / "bad.xml"
    f.write_bytes(b"<collection><document><id>1</id>\n<passage><offset>x</offset></passage></document></collection>")
    with pytest.raises(MalformedInputError) as info:
        list(read_records(f, "bioc-xml"))
    assert (info.value.path, info.value.line, info.value.record) == (str(f), 2, "1")
    assert str(info.value) == f"{f}, line 2, record 1: passage offset must be an integer, got 'x'"


def test_warnings_of_the_reader_reach_the_parent(tmp_path: Path) -> None:
    text = CDR_XML.read_text(encoding="utf-8").replace(
        '<location offset="49" length="9"/>', '<location offset="48" length="9"/>', 1
    )
    f = tmp_path / "skip.xml"
    f.write_text(text, encoding="utf-8")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        docs = list(read_records(f, "bioc-xml", {"mismatch": "skip"}))
    assert len(docs) == len(list(get_reader("bioc-xml")(CDR_XML)))
    assert [str(w.message).split(": ", 1)[1] for w in caught] == [
        "annotation 1 locations [[48, 57]] select [' clonidin'], but the annotation text is 'clonidine'; skipped"
    ]


def _crashing_reader(path: Path) -> Iterator[Deletion]:
    """Yields 300 records (more than one batch), then dies as libxml2 did on the issue's bomb."""
    for i in range(300):
        yield Deletion(str(i))
    faulthandler.disable()  # (in the child) no traceback dump in the test output
    ctypes.string_at(0)  # a real SIGSEGV


def test_a_native_crash_fails_the_file_alone(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(isolated_read, "get_reader", lambda fmt: _crashing_reader)
    f = tmp_path / "crash.xml"
    f.write_bytes(b"<x/>")
    seen = []
    with pytest.raises(ParserCrashError) as info:
        for record in read_records(f, "pubmed-xml"):
            seen.append(record)
    assert len(seen) == isolated_read.BATCH_SIZE  # the full batch before the crash arrived
    assert str(info.value) == (
        f"{f}: the reader's process was killed by SIGSEGV after 256 records (a crash in the native parser, or "
        "out of memory); this file is refused, the others are read"
    )
    assert _children() == []
    monkeypatch.undo()
    assert list(read_records(MEDLINE16, "pubmed-xml"))  # this process, and the next file, are fine


def _hungry_reader(path: Path) -> Iterator[Document]:
    yield from ()
    bytearray(8 << 30)  # 8 GiB: refused by the child's address-space cap before any page is touched


def test_the_child_runs_under_a_memory_cap(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(isolated_read, "get_reader", lambda fmt: _hungry_reader)
    monkeypatch.setenv(MEMORY_ENV, "512")
    with pytest.raises(DocumentTooLargeError, match=r"x\.xml: ran out of memory: a record is too large"):
        list(read_records(tmp_path / "x.xml", "ddi-xml"))


def test_stopping_early_ends_the_child(tmp_path: Path) -> None:
    records = read_records(MEDLINE16, "pubmed-xml")
    first = next(records)
    assert isinstance(first, Document | Deletion)
    assert len(_children()) == 1
    records.close()
    assert _children() == []


def test_an_unexpected_error_keeps_its_type_and_the_childs_traceback(monkeypatch, tmp_path: Path) -> None:
    def broken(path: Path) -> Iterator[Document]:
        yield from ()
        raise KeyError("oops")

    monkeypatch.setattr(isolated_read, "get_reader", lambda fmt: broken)
    with pytest.raises(KeyError, match="oops") as info:
        list(read_records(tmp_path / "x.xml", "pubmed-xml"))
    (note,) = info.value.__notes__
    assert note.startswith(f"raised in the child process reading {tmp_path / 'x.xml'}:\nTraceback")
    assert "in broken" in note


def test_an_os_error_in_the_child_stays_an_os_error(monkeypatch, tmp_path: Path) -> None:
    """The retry policy (tasks/retry.py) tells transient I/O from a bad path by the OSError's errno."""
    import errno

    def flaky(path: Path) -> Iterator[Document]:
        yield from ()
        raise OSError(errno.EIO, "Input/output error", str(path))

    monkeypatch.setattr(isolated_read, "get_reader", lambda fmt: flaky)
    with pytest.raises(OSError) as info:
        list(read_records(tmp_path / "x.xml", "pubmed-xml"))
    assert (info.value.errno, info.value.filename) == (errno.EIO, str(tmp_path / "x.xml"))


def test_an_error_that_cannot_be_pickled_arrives_as_text(monkeypatch, tmp_path: Path) -> None:
    class Odd(Exception):
        def __init__(self, a: int, b: int) -> None:  # pickling calls Odd(msg): fails
            super().__init__(f"odd {a} {b}")

    def broken(path: Path) -> Iterator[Document]:
        yield from ()
        raise Odd(1, 2)

    monkeypatch.setattr(isolated_read, "get_reader", lambda fmt: broken)
    with pytest.raises(RuntimeError, match=r"the Odd below was raised in the reader's process\n(.|\n)*odd 1 2"):
        list(read_records(tmp_path / "x.xml", "pubmed-xml"))


def test_ingest_goes_on_after_a_crashing_file_and_a_bomb(monkeypatch, tmp_path: Path) -> None:
    """Issue 14.1: `biomed ingest bomb.xml.gz good.xml` exited 139. Here the bomb is refused at the
    limit, a (simulated) native crash fails its file alone, and the good file is written."""
    from corpora.dataset.ingest import ingest_file
    from tests.corpora.formats.hostile_inputs import repeated, write_gzip_parts

    out = tmp_path / "ds"
    bomb = write_gzip_parts(
        tmp_path / "bomb.xml.gz",
        [
            b'<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>1</PMID><Article><Abstract><AbstractText Label="',
            repeated(b"A", 2048),
            b'">x</AbstractText></Abstract></Article></MedlineCitation></PubmedArticle></PubmedArticleSet>',
        ],
    )
    with pytest.raises(DocumentTooLargeError, match="per-document limit of 20 MB"):
        ingest_file(bomb, out, fmt="pubmed-xml")
    monkeypatch.setattr(
        isolated_read, "get_reader", lambda fmt: _crashing_reader if fmt == "ddi-xml" else get_reader(fmt)
    )
    with pytest.raises(ParserCrashError, match=r"bomb\.xml\.gz: the reader's process was killed by SIGSEGV \("):
        ingest_file(bomb, out, fmt="ddi-xml")
    # the killed child leaves a staging file (never a shard), which the next run clears
    assert [p.parent.name for p in out.rglob("*.parquet")] == [".staging"]
    from corpora.dataset.store import DatasetStore

    DatasetStore(out).clear_staging()
    assert list(out.rglob("*.parquet")) == []
    report = ingest_file(MEDLINE16, out)
    assert report.status == "written"
    assert report.documents == len([r for r in get_reader("pubmed-xml")(MEDLINE16) if isinstance(r, Document)])
    assert _children() == []


def test_the_decorator_runs_native_formats_in_a_child(tmp_path: Path) -> None:
    @isolated_read.isolate_native_formats
    def where(path: Path, fmt: str = "auto") -> int:
        return os.getpid()

    assert where(MEDLINE16) != os.getpid()  # pubmed-xml, detected
    assert where(path=CDR_XML, fmt="bioc-xml") != os.getpid()
    assert where(SAMPLES / "ncbi-disease" / "NCBI_devel_sample.PubTator.txt") == os.getpid()
    missing = tmp_path / "missing.xml"
    with pytest.raises(FileNotFoundError):  # not detectable: the function itself reports it, here
        where(missing, "auto")
    assert _children() == []


def test_memory_error_in_process_names_the_file(monkeypatch, tmp_path: Path) -> None:
    """Issue 14.2: under a memory limit the error was an empty MemoryError."""

    def starving(path: Path) -> Iterator[Document]:
        yield from ()
        raise MemoryError

    monkeypatch.setattr(isolated_read, "get_reader", lambda fmt: starving)
    with pytest.raises(DocumentTooLargeError) as info:
        list(read_records(tmp_path / "big.txt", "pubtator"))
    assert str(info.value) == (
        f"{tmp_path / 'big.txt'}: ran out of memory after 0 records: a record is too large for the memory "
        "available (see BIOMED_MAX_DOCUMENT_MB)"
    )


def test_ingest_flow_reports_the_crash_and_the_bomb_and_writes_the_rest(
    monkeypatch, tmp_path: Path, prefect_harness: None
) -> None:
    """The issue's `biomed ingest bomb.xml.gz good.xml`, through the flow: both bad files are listed
    with their reason, the good one is written and the manifest exists."""
    from corpora.dataset.store import open_dataset
    from corpora.errors import PartialFailure
    from pipelines.flows.ingest import ingest_flow
    from tests.corpora.formats.hostile_inputs import repeated, write_gzip_parts

    bomb = write_gzip_parts(
        tmp_path / "bomb.xml.gz",
        [
            b'<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>1</PMID><Article><Abstract><AbstractText Label="',
            repeated(b"A", 2048),
            b'">x</AbstractText></Abstract></Article></MedlineCitation></PubmedArticle></PubmedArticleSet>',
        ],
    )
    crash = tmp_path / "crash.xml"
    crash.write_bytes(b'<document id="d1"><sentence id="d1.s0" text="x"/></document>')
    good = tmp_path / "good.xml"
    good.write_bytes((SAMPLES / "pubmed" / "pubmed1.xml").read_bytes())
    monkeypatch.setattr(
        isolated_read, "get_reader", lambda fmt: _crashing_reader if fmt == "ddi-xml" else get_reader(fmt)
    )
    out = tmp_path / "ds"
    with pytest.raises(PartialFailure) as info:
        ingest_flow([str(bomb), str(crash), str(good)], str(out), progress=False)
    failed = {Path(r["path"]).name: r["error"] for r in info.value.summary.failed}
    assert set(failed) == {"bomb.xml.gz", "crash.xml"}
    assert "per-document limit of 20 MB" in failed["bomb.xml.gz"]
    assert "killed by SIGSEGV" in failed["crash.xml"]
    assert [Path(r["path"]).name for r in info.value.summary.written] == ["good.xml"]
    assert (out / "manifest.json").is_file()
    assert {d.source.path for d in open_dataset(out).iter_documents()} == {str(good)}
    assert _children() == []


def _warn_and_fail(path: Path) -> None:
    class LocalWarning(UserWarning):  # a local class: pickle cannot find it by name
        pass

    warnings.warn("an unpicklable category", LocalWarning, stacklevel=1)
    error = MalformedInputError(path, "broken on purpose", line=3)
    error.parser = lambda: None  # an attribute that does not pickle
    raise error


def test_an_error_or_warning_that_does_not_pickle_still_reaches_the_parent(tmp_path: Path) -> None:
    """Before: the child's send failed and it exited with status 1, reported as a parser crash."""
    path = tmp_path / "x.xml"
    path.write_text("<a/>", encoding="utf-8")
    with warnings.catch_warnings(record=True) as caught, pytest.raises((MalformedInputError, RuntimeError)) as info:
        warnings.simplefilter("always")
        isolated_read.run_in_child(path, _warn_and_fail, path)
    assert not isinstance(info.value, ParserCrashError)
    assert "broken on purpose" in str(info.value) and str(path) in str(info.value)
    assert [str(w.message) for w in caught if "unpicklable" in str(w.message)] == ["an unpicklable category"]


def test_an_input_error_of_a_class_imported_twice_arrives_as_the_current_class(tmp_path: Path) -> None:
    """A long test session can import `corpora.errors` twice; pickle then refuses the old class."""
    from corpora import errors

    stale = type("MalformedInputError", (errors.InputError,), {"__module__": "corpora.errors"})
    sent = isolated_read._portable(tmp_path / "x.xml", stale(tmp_path / "x.xml", "bad tag", line=7))
    assert type(sent) is MalformedInputError
    assert (sent.path, sent.reason, sent.line) == (str(tmp_path / "x.xml"), "bad tag", 7)
