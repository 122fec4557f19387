"""Opening input files: plain or gzip, UTF-8 checked, line numbers kept, content hashed.

Every reader goes through here so that a truncated gzip, a non-UTF-8 byte or an unreadable file
becomes the same clear `InputError` naming the file and line.

Tested in `tests/corpora/formats/test_pubmed_xml.py`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, BinaryIO

from corpora.errors import DocumentTooLargeError, EmptyInputError, EncodingError, MalformedInputError
from corpora.formats.limits import DOCUMENT_ENV, LimitedStream, max_document_bytes, too_large
from corpora.formats.limits import describe as describe_limit

GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


def is_gzip(path: str | Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def open_binary(path: str | Path) -> BinaryIO:
    """Open a file for reading bytes, transparently decompressing gzip (detected by magic bytes)."""
    if is_gzip(path):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def sha256_file(path: str | Path) -> str:
    """Content hash of the raw file bytes (what the manifest keys reruns on)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def head_bytes(path: str | Path, n: int = 4096) -> bytes:
    """The first `n` decompressed bytes, for format detection; a broken gzip is reported."""
    try:
        with open_binary(path) as fh:
            return fh.read(n)
    except (OSError, EOFError, zlib.error) as exc:
        if is_gzip(path):
            raise MalformedInputError(path, f"gzip stream cannot be read ({exc})") from exc
        raise


def iter_lines(
    path: str | Path, *, max_line_bytes: int | None = None, final_newline: bool = False
) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, line without its newline) for a UTF-8 text file, plain or gzip.

    A BOM is dropped; a non-UTF-8 byte raises EncodingError with its line; a truncated gzip raises
    MalformedInputError; a file with no bytes raises EmptyInputError. Lines are read in bounded
    pieces: one longer than `max_line_bytes` (default: the per-document limit of
    `corpora.formats.limits`) raises DocumentTooLargeError before it is held in memory. With
    `final_newline=True` a last line without its newline (a file cut mid-line) is a
    MalformedInputError.
    """
    limit = max_document_bytes() if max_line_bytes is None else max_line_bytes
    lineno = 0
    seen_any = False
    try:
        with open_binary(path) as raw:
            while True:
                bline = raw.readline(limit + 1)
                if not bline:
                    break
                lineno += 1
                seen_any = True
                if len(bline) > limit and not (len(bline) == limit + 1 and bline.endswith(b"\n")):
                    raise too_large(path, f"line {lineno}", len(bline), limit, line=lineno)
                if final_newline and not bline.endswith(b"\n") and not raw.read(1):
                    raise MalformedInputError(
                        path,
                        "the last line has no newline: the file looks truncated (add one if it is whole)",
                        line=lineno,
                    )
                try:
                    line = bline.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise EncodingError(
                        path, f"not valid UTF-8 (byte {bline[exc.start]:#04x} at column {exc.start + 1})", line=lineno
                    ) from exc
                if lineno == 1 and line.startswith("\ufeff"):
                    line = line[1:]
                yield lineno, line.rstrip("\r\n")
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise MalformedInputError(path, f"gzip stream is truncated or corrupt after line {lineno} ({exc})") from exc
    if not seen_any:
        raise EmptyInputError(path, "file is empty")


def read_text(
    path: str | Path, *, max_bytes: int | None = None, what: str = "the file", env: str = DOCUMENT_ENV
) -> str:
    """Whole file as text (for small formats such as brat .txt); same errors as iter_lines.

    At most `max_bytes` (default: the per-document limit) are read; a larger file raises
    DocumentTooLargeError without being read further.
    """
    limit = max_document_bytes() if max_bytes is None else max_bytes
    try:
        with open_binary(path) as raw:
            data = raw.read(limit + 1)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise MalformedInputError(path, f"gzip stream is truncated or corrupt ({exc})") from exc
    if len(data) > limit:
        raise DocumentTooLargeError(
            path, f"{what} ({len(data):,} bytes or more) is larger than {describe_limit(limit, env)}"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise EncodingError(path, f"not valid UTF-8 (byte {data[exc.start]:#04x})", line=line) from exc
    return text[1:] if text.startswith("\ufeff") else text


def open_limited(path: str | Path, what: str = "one record") -> LimitedStream:
    """`open_binary` behind a LimitedStream at the per-document limit (for the XML readers)."""
    return LimitedStream(open_binary(path), path, max_document_bytes(), what)


def text_stream(path: str | Path) -> io.TextIOWrapper:
    """A strict UTF-8 text stream (callers translate UnicodeDecodeError themselves)."""
    return io.TextIOWrapper(open_binary(path), encoding="utf-8", errors="strict", newline="")


@contextmanager
def open_output(path_or_fh: str | Path | IO[Any], binary: bool = False) -> Iterator[IO[Any]]:
    """A writer's destination: a path (gzip when it ends in .gz) or an already open file.

    Text is written as UTF-8 with `\\n` line ends whatever the platform; an open file is used as
    it is and not closed.
    """
    if not isinstance(path_or_fh, (str, Path)):
        yield path_or_fh
        return
    p = Path(path_or_fh)
    if binary:
        opener = gzip.open if p.suffix == ".gz" else open
        with opener(p, "wb") as fh:
            yield fh
    elif p.suffix == ".gz":
        with gzip.open(p, "wt", encoding="utf-8", newline="\n") as fh:
            yield fh
    else:
        with open(p, "w", encoding="utf-8", newline="\n") as fh:
            yield fh
