"""BioC XML reader and writer (streaming; the mapping itself is in `corpora.formats.bioc_common`).

The reader walks the file with lxml `iterparse`, turns each finished `<document>` into the
JSON-shaped dict of `bioc_common` (with element line numbers for error messages), maps it, and
clears it, so memory stays at one document. Collection `source`, `date`, `key` and infons are
carried into every document's `metadata.extra`. No DTD is loaded and no entity is resolved.
Elements that BioC does not define raise MalformedInputError, as does XML that is not well formed
(with its line); bytes that are not UTF-8 raise EncodingError.

The writer streams too (lxml `xmlfile`): one `<collection>` whose source/date/key come from the
first document when it was read from BioC, else from the arguments.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from lxml import etree

from corpora.errors import BiomedError, EmptyInputError, EncodingError, MalformedInputError
from corpora.formats.bioc_common import collection_info, document_from_bioc
from corpora.formats.bioc_export import document_to_bioc, header_collection, iter_first
from corpora.formats.textio import open_limited, open_output, sha256_file
from corpora.formats.xml_safety import PARSE_OPTIONS, refuse_entity_references
from corpora.schema import Document, Source

FORMAT = "bioc-xml"
DOCTYPE = '<!DOCTYPE collection SYSTEM "BioC.dtd">'

_CHILDREN = {
    "document": {"id", "infon", "passage", "annotation", "relation"},
    "passage": {"infon", "offset", "text", "sentence", "annotation", "relation"},
    "sentence": {"infon", "offset", "text", "annotation", "relation"},
    "annotation": {"infon", "location", "text"},
    "relation": {"infon", "node"},
}


def read_bioc_xml(path: str | Path, *, mismatch: str = "error") -> Iterator[Document]:
    """Stream the documents of a BioC XML collection (plain or gzip).

    `mismatch="skip"` drops annotations whose text does not match their locations (with a warning,
    listed in extra `bioc.skipped`) instead of raising OffsetMismatchError.
    """
    source = Source(path=str(path), sha256=sha256_file(path), format=FORMAT)
    header: dict[str, Any] = {"source": None, "date": None, "key": None}
    coll_infons: dict[str, str] = {}
    collection: dict[str, Any] | None = None
    count = 0
    try:
        with open_limited(path, "one BioC document") as fh:
            parser = etree.iterparse(fh, events=("start", "end"), **PARSE_OPTIONS)
            root: Any = None
            for event, elem in parser:
                if event == "start":
                    if root is None:
                        root = elem
                        if elem.tag != "collection":
                            raise MalformedInputError(
                                path, f"root element is <{elem.tag}>, not a BioC <collection>", line=elem.sourceline
                            )
                    continue
                if elem.getparent() is not root:
                    continue
                tag = elem.tag
                if tag in header:
                    refuse_entity_references(path, elem)
                    header[tag] = elem.text or ""
                elif tag == "infon":
                    refuse_entity_references(path, elem)
                    _add_infon(coll_infons, elem, path)
                elif tag == "document":
                    if collection is None:
                        collection = collection_info(header["source"], header["date"], header["key"], coll_infons)
                    count += 1
                    if fh.other_entities:
                        refuse_entity_references(path, elem, record=f"document #{count}")
                    fh.mark()
                    node = _document(elem, path)
                    yield document_from_bioc(
                        node, collection, source, line=elem.sourceline, record=f"document #{count}", mismatch=mismatch
                    )
                    elem.clear()
                    while elem.getprevious() is not None:
                        del root[0]
                elif isinstance(tag, str):
                    raise MalformedInputError(path, f"unexpected element <{tag}> in <collection>", line=elem.sourceline)
    except etree.XMLSyntaxError as exc:
        msg = str(exc.msg or exc)
        if "Document is empty" in msg and count == 0:
            raise EmptyInputError(path, "file holds no XML") from exc
        cls = EncodingError if ("UTF-8" in msg or "encoding" in msg.lower()) else MalformedInputError
        raise cls(path, f"not well-formed XML: {msg}", line=exc.lineno) from exc
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise MalformedInputError(path, f"gzip stream is truncated or corrupt after document #{count} ({exc})") from exc


def _add_infon(infons: dict[str, str], elem: Any, path: str | Path) -> None:
    key = elem.get("key")
    if key is None:
        raise MalformedInputError(path, "<infon> without a key attribute", line=elem.sourceline)
    if key in infons:
        raise MalformedInputError(path, f"infon key {key!r} occurs twice in the same element", line=elem.sourceline)
    infons[key] = elem.text or ""


def _node(elem: Any, path: str | Path) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """Common part of every BioC element: line, infons, and children grouped by tag."""
    allowed = _CHILDREN[elem.tag]
    infons: dict[str, str] = {}
    groups: dict[str, list[Any]] = {}
    for child in elem:
        tag = child.tag
        if not isinstance(tag, str):
            continue
        if tag not in allowed:
            raise MalformedInputError(path, f"unexpected element <{tag}> in <{elem.tag}>", line=child.sourceline)
        if tag == "infon":
            _add_infon(infons, child, path)
        else:
            groups.setdefault(tag, []).append(child)
    return {"_line": elem.sourceline, "infons": infons}, groups


def _single_text(groups: dict[str, list[Any]], tag: str, parent: Any, path: str | Path) -> str | None:
    found = groups.get(tag, [])
    if len(found) > 1:
        raise MalformedInputError(path, f"<{parent.tag}> has {len(found)} <{tag}> elements", line=parent.sourceline)
    return (found[0].text or "") if found else None


def _document(elem: Any, path: str | Path) -> dict[str, Any]:
    node, groups = _node(elem, path)
    node["id"] = _single_text(groups, "id", elem, path)
    node["passages"] = [_passage(p, path) for p in groups.get("passage", [])]
    node["annotations"] = [_annotation(a, path) for a in groups.get("annotation", [])]
    node["relations"] = [_relation(r, path) for r in groups.get("relation", [])]
    return node


def _passage(elem: Any, path: str | Path) -> dict[str, Any]:
    node, groups = _node(elem, path)
    node["offset"] = _single_text(groups, "offset", elem, path)
    node["text"] = _single_text(groups, "text", elem, path)
    node["sentences"] = [_passage(s, path) for s in groups.get("sentence", [])]
    node["annotations"] = [_annotation(a, path) for a in groups.get("annotation", [])]
    node["relations"] = [_relation(r, path) for r in groups.get("relation", [])]
    return node


def _annotation(elem: Any, path: str | Path) -> dict[str, Any]:
    node, groups = _node(elem, path)
    node["id"] = elem.get("id")
    node["text"] = _single_text(groups, "text", elem, path)
    node["locations"] = [
        {"offset": loc.get("offset"), "length": loc.get("length")} for loc in groups.get("location", [])
    ]
    return node


def _relation(elem: Any, path: str | Path) -> dict[str, Any]:
    node, groups = _node(elem, path)
    node["id"] = elem.get("id")
    node["nodes"] = [{"refid": n.get("refid"), "role": n.get("role") or ""} for n in groups.get("node", [])]
    return node


# ---------------------------------------------------------------------------------------- writer


def write_bioc_xml(
    docs: Iterable[Document], path_or_fh: str | Path | IO[bytes], *, source: str = "", date: str = "", key: str = ""
) -> int:
    """Write documents as one BioC XML collection (gzip when the path ends in .gz); returns the count.

    The collection's source/date/key/infons are the first document's when it was read from BioC,
    else the arguments.
    """
    first, stream = iter_first(docs)
    collection = header_collection(first, source, date, key)
    n = 0
    with open_output(path_or_fh, binary=True) as out, etree.xmlfile(out, encoding="UTF-8") as xf:
        xf.write_declaration()
        xf.write_doctype(DOCTYPE)
        with xf.element("collection"):
            xf.write("\n")
            for tag in ("source", "date", "key"):
                _leaf(xf, tag, collection.get(tag, ""))
            for k, v in collection.get("infons", {}).items():
                el = etree.Element("infon", key=k)
                el.text = v
                xf.write(el, pretty_print=True)
            for doc in stream:
                try:
                    xf.write(_document_element(document_to_bioc(doc, collection)), pretty_print=True)
                except ValueError as exc:
                    raise BiomedError(f"document {doc.document_id}: cannot be written as XML ({exc})") from exc
                n += 1
    return n


def _leaf(xf: Any, tag: str, text: str) -> None:
    el = etree.Element(tag)
    el.text = text
    xf.write(el, pretty_print=True)


def _sub(parent: Any, tag: str, text: str | None = None, **attrs: str) -> Any:
    el = etree.SubElement(parent, tag, **attrs)
    if text is not None:
        el.text = text
    return el


def _add_infons(parent: Any, infons: dict[str, str]) -> None:
    for k, v in infons.items():
        _sub(parent, "infon", v, key=k)


def _document_element(node: dict[str, Any]) -> Any:
    el = etree.Element("document")
    _sub(el, "id", node["id"])
    _add_infons(el, node["infons"])
    for p in node["passages"]:
        _passage_element(el, p, "passage")
    for a in node["annotations"]:
        _annotation_element(el, a)
    for r in node["relations"]:
        _relation_element(el, r)
    return el


def _passage_element(parent: Any, node: dict[str, Any], tag: str) -> None:
    el = _sub(parent, tag)
    _add_infons(el, node["infons"])
    _sub(el, "offset", str(node["offset"]))
    if node.get("sentences"):
        for s in node["sentences"]:
            _passage_element(el, s, "sentence")
    else:
        _sub(el, "text", node["text"])
    for a in node["annotations"]:
        _annotation_element(el, a)
    for r in node["relations"]:
        _relation_element(el, r)


def _annotation_element(parent: Any, node: dict[str, Any]) -> None:
    el = _sub(parent, "annotation", id=node["id"])
    _add_infons(el, node["infons"])
    for loc in node["locations"]:
        _sub(el, "location", offset=str(loc["offset"]), length=str(loc["length"]))
    _sub(el, "text", node["text"])


def _relation_element(parent: Any, node: dict[str, Any]) -> None:
    el = _sub(parent, "relation", id=node["id"])
    _add_infons(el, node["infons"])
    for n in node["nodes"]:
        _sub(el, "node", refid=n["refid"], role=n["role"])
