"""The per-document limit: its setting, the stream that enforces it for XML, and bounded line reads."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest

from corpora.errors import ConfigError, DocumentTooLargeError, MalformedInputError
from corpora.formats.conll import read_conll
from corpora.formats.limits import COLLECTION_ENV, DOCUMENT_ENV, LimitedStream, max_collection_bytes, max_document_bytes
from corpora.formats.pubtator import read_pubtator
from corpora.formats.textio import iter_lines, read_text
from tests.corpora.formats.hostile_inputs import MIB, repeated, write_gzip_parts


def test_the_bomb_builder_repeats_one_member(tmp_path: Path) -> None:
    f = write_gzip_parts(tmp_path / "b.gz", [b"<", repeated(b"A", 3), b">"])
    assert gzip.decompress(f.read_bytes()) == b"<" + b"A" * 3 * MIB + b">"


def test_defaults_and_the_environment(monkeypatch) -> None:
    monkeypatch.delenv(DOCUMENT_ENV, raising=False)
    monkeypatch.delenv(COLLECTION_ENV, raising=False)
    assert (max_document_bytes(), max_collection_bytes()) == (20_000_000, 256_000_000)
    monkeypatch.setenv(DOCUMENT_ENV, "0.5")
    assert max_document_bytes() == 500_000
    for bad in ("lots", "0", "-3"):
        monkeypatch.setenv(DOCUMENT_ENV, bad)
        with pytest.raises(ConfigError, match=DOCUMENT_ENV):
            max_document_bytes()


def test_limited_stream_counts_from_the_last_mark() -> None:
    stream = LimitedStream(io.BytesIO(b"x" * 100), "f.xml", limit=40, what="one record")
    assert stream.read(30) == b"x" * 30
    stream.mark()
    assert len(stream.read(40)) == 40  # 40 since the mark: at the limit, not past it
    with pytest.raises(DocumentTooLargeError, match=r"^f\.xml: one record is larger than the per-document limit"):
        stream.read(1)


def test_a_two_gib_line_in_a_gzip_is_refused_after_one_limit(tmp_path: Path, monkeypatch) -> None:
    """Issue 14.2: the line was read whole (past 6 GB of memory)."""
    f = write_gzip_parts(tmp_path / "line.txt.gz", [b"first\n", repeated(b"C", 2048), b"\n"])
    assert f.stat().st_size < 3_000_000
    monkeypatch.setenv(DOCUMENT_ENV, "1")
    lines = iter_lines(f)
    assert next(lines) == (1, "first")
    with pytest.raises(DocumentTooLargeError, match=r"line 2: line 2 \(1,000,001 bytes or more\) is larger than"):
        next(lines)


def test_a_line_exactly_at_the_limit_is_read(tmp_path: Path) -> None:
    f = tmp_path / "ok.txt"
    f.write_bytes(b"a" * 50 + b"\n" + b"b" * 50)
    assert [n for n, _ in iter_lines(f, max_line_bytes=50)] == [1, 2]
    with pytest.raises(DocumentTooLargeError):
        list(iter_lines(f, max_line_bytes=49))


def test_final_newline_is_required_only_when_asked(tmp_path: Path) -> None:
    f = tmp_path / "cut.txt"
    f.write_bytes(b"a\nb")
    assert list(iter_lines(f)) == [(1, "a"), (2, "b")]
    with pytest.raises(MalformedInputError, match="line 2: the last line has no newline"):
        list(iter_lines(f, final_newline=True))


def test_read_text_is_bounded(tmp_path: Path) -> None:
    f = write_gzip_parts(tmp_path / "t.txt.gz", [repeated(b"D", 2048)])
    with pytest.raises(
        DocumentTooLargeError, match=r"the file \(20,000,001 bytes or more\) is larger than the per-doc"
    ):
        read_text(f)


@pytest.mark.parametrize("reader", [read_pubtator, read_conll])
def test_line_formats_refuse_a_two_gib_line(reader, tmp_path: Path) -> None:
    f = write_gzip_parts(tmp_path / "big.txt.gz", [b"1|t|", repeated(b"E", 2048), b"\n"])
    with pytest.raises(DocumentTooLargeError, match="line 1"):
        list(reader(f))


def test_pubtator_document_of_many_lines_is_bounded(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(DOCUMENT_ENV, "0.01")  # 10,000 bytes
    mentions = "".join(f"7\t0\t1\tA\tChemical\tD{i:06d}\n" for i in range(1000))
    f = tmp_path / "many.txt"
    f.write_text("7|t|A title\n7|a|An abstract\n" + mentions + "\n", encoding="utf-8")
    with pytest.raises(DocumentTooLargeError, match=r"document 7 \(from line 1\)"):
        list(read_pubtator(f))


def test_conll_docstart_block_is_bounded(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(DOCUMENT_ENV, "0.01")
    f = tmp_path / "block.tsv"
    f.write_text("-DOCSTART-\tO\n\n" + "tok\tO\n\n" * 3000, encoding="utf-8")
    with pytest.raises(DocumentTooLargeError, match=r"one document \(a sentence, or a -DOCSTART- block\)"):
        list(read_conll(f))
    f.write_text("tok\tO\n\n" * 3000, encoding="utf-8")  # 3,000 one-sentence documents: each is small
    assert len(list(read_conll(f))) == 3000


@pytest.mark.parametrize(
    ("data", "flagged"),
    [
        (b"a &amp; b &lt;&gt;&quot;&apos; &#65; &#x42;", False),
        (b"Aspirin &co; helps", True),
        (b"cut at the end &am", True),  # a name cut by the chunk end: conservative
        (b"no ampersand at all", False),
    ],
)
def test_other_entities_flag(data: bytes, flagged: bool) -> None:
    stream = LimitedStream(io.BytesIO(data), "f.xml", limit=1000)
    stream.read(len(data))
    assert stream.other_entities is flagged
