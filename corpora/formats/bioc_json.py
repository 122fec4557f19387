"""BioC JSON reader and writer (the mapping itself is in `corpora.formats.bioc_common`).

Accepted input: a collection object `{source, date, key, infons, documents: [...]}`, a bare list of
documents, a single document object, or JSON lines with one document per line (detected when the
first non-blank line is a complete document object). A collection is parsed whole (BioC JSON files
are per collection); its documents are then mapped and released one at a time, so no second copy
is held. JSON lines are streamed. Errors name the file and the line (JSON syntax, JSON lines) or
the document number and id.

Tested in `tests/corpora/formats/test_bioc_xml.py`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from contextlib import closing
from pathlib import Path
from typing import IO, Any

from corpora.errors import DocumentTooLargeError, MalformedInputError
from corpora.formats.bioc_common import collection_info, document_from_bioc
from corpora.formats.bioc_export import document_to_bioc, header_collection, iter_first
from corpora.formats.limits import COLLECTION_ENV, max_collection_bytes
from corpora.formats.textio import head_bytes, iter_lines, open_output, read_text, sha256_file
from corpora.schema import Document, Source

FORMAT = "bioc-json"


def read_bioc_json(path: str | Path, *, mismatch: str = "error") -> Iterator[Document]:
    """Stream the documents of a BioC JSON collection or JSON-lines file (plain or gzip)."""
    source = Source(path=str(path), sha256=sha256_file(path), format=FORMAT)
    if _is_json_lines(path):
        yield from _read_lines(path, source, mismatch)
        return
    text = read_text(path, max_bytes=max_collection_bytes(), what="the JSON collection", env=COLLECTION_ENV)
    obj = _parse(text, path)
    del text
    collection: dict[str, Any] = {}
    if isinstance(obj, dict) and "documents" in obj:
        infons = obj.get("infons") or {}
        if not isinstance(infons, dict):
            raise MalformedInputError(path, "collection infons must be an object")
        collection = collection_info(
            _opt_str(obj.get("source")),
            _opt_str(obj.get("date")),
            _opt_str(obj.get("key")),
            {str(k): str(v) for k, v in infons.items()},
        )
        documents = obj["documents"]
    elif isinstance(obj, dict) and "passages" in obj:
        documents = [obj]
    elif isinstance(obj, list):
        documents = obj
    else:
        raise MalformedInputError(
            path, 'JSON is neither a BioC collection (with "documents"), a document, nor a list of documents'
        )
    if not isinstance(documents, list):
        raise MalformedInputError(path, '"documents" must be a list')
    del obj
    documents.reverse()
    count = 0
    while documents:
        node = documents.pop()
        count += 1
        if not isinstance(node, dict):
            raise MalformedInputError(path, f"document #{count} is not an object", record=f"document #{count}")
        yield document_from_bioc(node, collection, source, record=f"document #{count}", mismatch=mismatch)


def _parse(text: str, path: str | Path, line: int | None = None) -> Any:
    """json.loads with its failures as MalformedInputError: syntax (with line and column), nesting
    too deep for the parser (RecursionError), and strings holding a lone UTF-16 surrogate
    (`"\\ud800"` is valid JSON but not Unicode, and fails later when the text is written)."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        where = exc.lineno if line is None else line
        raise MalformedInputError(path, f"not valid JSON: {exc.msg} (column {exc.colno})", line=where) from None
    except RecursionError:
        raise MalformedInputError(path, "JSON nested too deeply to parse (thousands of levels)", line=line) from None
    if _SURROGATE_ESCAPE.search(text):
        _check_unicode(obj, path, line)
    return obj


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _check_unicode(obj: Any, path: str | Path, line: int | None) -> None:
    """Raise MalformedInputError for the first string (or key) that is not encodable Unicode."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                bad = f"\\u{ord(item[exc.start]):04x}"
                raise MalformedInputError(
                    path, f"a string holds a lone surrogate ({bad}): not valid Unicode text", line=line
                ) from None


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _is_json_lines(path: str | Path) -> bool:
    """JSON lines when the first non-blank line is a whole document. A first line longer than the
    per-document limit is a collection written on one line (read whole, under the collection limit)
    unless the file starts as a document object (no "documents" key, a "passages" one): then that
    document is too large however the file is laid out."""
    try:
        with closing(iter_lines(path)) as lines:
            return _first_is_document(lines)
    except DocumentTooLargeError:
        head = head_bytes(path, 1 << 16)
        if head.lstrip().startswith(b"{") and b'"passages"' in head and b'"documents"' not in head:
            raise
        return False


def _first_is_document(lines: Iterator[tuple[int, str]]) -> bool:
    for _, line in lines:
        if not line.strip():
            continue
        try:
            first = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            return False
        return isinstance(first, dict) and "passages" in first and "documents" not in first
    return False


def _read_lines(path: str | Path, source: Source, mismatch: str) -> Iterator[Document]:
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        node = _parse(line, path, lineno)
        if not isinstance(node, dict):
            raise MalformedInputError(path, "a JSON line must hold one BioC document object", line=lineno)
        yield document_from_bioc(node, {}, source, line=lineno, mismatch=mismatch)


# ---------------------------------------------------------------------------------------- writer


def write_bioc_json(
    docs: Iterable[Document],
    path_or_fh: str | Path | IO[str],
    *,
    jsonl: bool = False,
    source: str = "",
    date: str = "",
    key: str = "",
    indent: int | None = None,
) -> int:
    """Write a BioC JSON collection, or JSON lines with `jsonl=True` (gzip for .gz paths).

    In JSON lines there is no collection, so each document keeps its collection fields itself.
    """
    n = 0
    with open_output(path_or_fh) as out:
        if jsonl:
            for doc in docs:
                out.write(json.dumps(document_to_bioc(doc, {}), ensure_ascii=False) + "\n")
                n += 1
            return n
        first, stream = iter_first(docs)
        collection = header_collection(first, source, date, key)
        head = {k: collection.get(k, "") for k in ("source", "date", "key")}
        head["infons"] = collection.get("infons", {})
        opening = json.dumps(head, ensure_ascii=False, indent=indent)[:-1].rstrip()
        out.write(opening + ("," if head else "") + ("\n" if indent is not None else " ") + '"documents": [')
        for doc in stream:
            out.write(
                ("," if n else "")
                + "\n"
                + json.dumps(document_to_bioc(doc, collection), ensure_ascii=False, indent=indent)
            )
            n += 1
        out.write("\n]}\n")
    return n
