"""DDI corpus 2013 (DDIExtraction 2013) XML: one file is one Document of drug mentions and interactions.

Layout of a file: `<document id>` holding `<sentence id text>` elements, each with
`<entity id charOffset type text>` (types drug, brand, group, drug_n) and
`<pair id e1 e2 ddi="true|false" [type]>` elements. The corpus is many small files in folders
(Train/DrugBank, Train/MedLine, Test/...), so a folder input is expanded into files as usual.

Text: the sentences joined by one space (an empty sentence still takes its place, so the ids and
passages line up with the file); one passage per sentence (type "sentence", id = the sentence id)
and the same spans in `Document.sentences`. Sentence texts keep their CR/LF characters
(`&#xd;&#xa;` in the XML): DDI's offsets count them.

Entities: `charOffset="s-e"` is sentence-relative with an INCLUSIVE end; it becomes document-level
half-open `[start + s, start + e + 1)`. A discontinuous entity (`s1-e1;s2-e2`) keeps one offset pair
per fragment and `Entity.text` holds the fragments. The `text` attribute must equal the fragments
joined by a space or by nothing (as for brat: the corpus writes "nonheme iron" for 117-123;157-160,
and "mu-selective opioids" for "mu-" + "selective opioids"). One entity of the 2013 release,
DDI-DrugBank.d216.s16.e2 "(R)-warfarin" at 95-98;107-114, has every fragment one character to the
left of its text; an entity whose fragments all match once moved by the same one character (left
or right) is read at the moved offsets, with a warning, and its written charOffset is kept in
`metadata.extra` (`{"ddi": {"moved_offsets": {entity id: "95-98;107-114"}}}`). Any other mismatch is
an OffsetMismatchError naming the file, the entity's line, the sentence and the entity.

Relations: only positive pairs (`ddi="true"`) become Relations: id = the pair id, type = the pair's
`type` attribute as written ("mechanism", "effect", "advise", "int"), arguments = the e1 and e2
entity ids. Negative pairs are implicit, as in ChemProt: every other pair of mentions of a sentence
is negative (the `ddi` relation task of `biomodels.data.re_candidates` builds them). One positive pair of the
release has no `type` (DDI-DrugBank.d236.s29.p0); it becomes type "int", DDI's class for an
interaction stated without detail, and is listed in `metadata.extra` under `ddi.untyped_pairs`.
"""

from __future__ import annotations

import gzip
import logging
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lxml import etree

from corpora.errors import EmptyInputError, EncodingError, MalformedInputError, OffsetMismatchError
from corpora.formats.concept_ids import dump_extra
from corpora.formats.textio import open_limited, sha256_file
from corpora.formats.xml_safety import PARSE_OPTIONS, refuse_entity_references
from corpora.schema import Document, Entity, Metadata, Passage, Relation, Source, Span

log = logging.getLogger(__name__)

FORMAT_NAME = "ddi-xml"
SEPARATOR = " "
UNTYPED_PAIR_TYPE = "int"
_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


def read_ddi(path: str | Path) -> Iterator[Document]:
    """Yield the one Document of a DDI XML file (see the module docstring)."""
    p = Path(path)
    source = Source(path=str(p), sha256=sha256_file(p), format=FORMAT_NAME)
    doc: Document | None = None
    extra: dict[str, Any] = {}
    entity_ids: set[str] = set()
    cursor = 0
    try:
        with open_limited(p, "the DDI document (one file)") as fh:
            parser = etree.iterparse(fh, events=("start", "end"), **PARSE_OPTIONS)
            for event, elem in parser:
                if event == "start":
                    if doc is None:
                        doc = _start_document(p, elem, source)
                    elif elem.tag not in ("sentence", "entity", "pair"):
                        raise MalformedInputError(
                            p, f"unexpected element <{elem.tag}> in a DDI document", line=elem.sourceline, record=doc.id
                        )
                    continue
                if elem.tag != "sentence" or doc is None:
                    continue
                if elem.getparent() is None or elem.getparent().tag != "document":
                    raise MalformedInputError(p, "<sentence> outside <document>", line=elem.sourceline, record=doc.id)
                refuse_entity_references(p, elem, record=doc.id)
                if doc.passages:
                    cursor += len(SEPARATOR)
                cursor = _add_sentence(p, doc, elem, cursor, entity_ids, extra)
                elem.clear()
                while elem.getprevious() is not None:
                    del elem.getparent()[0]
    except etree.XMLSyntaxError as exc:
        msg = str(exc.msg or exc)
        if "Document is empty" in msg and doc is None:
            raise EmptyInputError(p, "file holds no XML") from exc
        cls = EncodingError if ("UTF-8" in msg or "encoding" in msg.lower()) else MalformedInputError
        raise cls(p, f"not well-formed XML: {msg}", line=exc.lineno) from exc
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise MalformedInputError(p, f"gzip stream is truncated or corrupt ({exc})") from exc
    if doc is None:
        raise EmptyInputError(p, "file holds no <document>")
    if extra:
        doc.metadata = Metadata(extra=dump_extra({"ddi": extra}))
    yield doc


def _start_document(path: Path, elem: Any, source: Source) -> Document:
    if elem.tag != "document":
        raise MalformedInputError(path, f"root element is <{elem.tag}>, not a DDI <document>", line=elem.sourceline)
    doc_id = (elem.get("id") or "").strip()
    if not doc_id:
        raise MalformedInputError(path, "<document> has no id attribute", line=elem.sourceline)
    return Document(id=doc_id, document_id=doc_id, source=source)


def _required(path: Path, elem: Any, name: str, record: str) -> str:
    value = elem.get(name)
    if value is None:
        raise MalformedInputError(path, f"<{elem.tag}> has no {name} attribute", line=elem.sourceline, record=record)
    return value


def _add_sentence(path: Path, doc: Document, elem: Any, start: int, entity_ids: set[str], extra: dict[str, Any]) -> int:
    """Add one sentence's passage, span, entities and positive pairs; return the text end."""
    sid = _required(path, elem, "id", doc.id)
    text = _required(path, elem, "text", sid)
    end = start + len(text)
    doc.passages.append(Passage(sid, "sentence", text, [[start, end]]))
    doc.sentences.append(Span(start, end))
    local: set[str] = set()
    for child in elem:
        if not isinstance(child.tag, str):
            continue
        if child.tag == "entity":
            ent = _entity(path, doc, sid, child, text, start, extra)
            if ent.id in entity_ids:
                raise MalformedInputError(path, f"entity id {ent.id} is used twice", line=child.sourceline, record=sid)
            entity_ids.add(ent.id)
            local.add(ent.id)
            doc.entities.append(ent)
        elif child.tag == "pair":
            _pair(path, doc, sid, child, local, extra)
        else:
            raise MalformedInputError(
                path, f"unexpected element <{child.tag}> in <sentence>", line=child.sourceline, record=sid
            )
    return end


def _entity(path: Path, doc: Document, sid: str, elem: Any, text: str, start: int, extra: dict[str, Any]) -> Entity:
    eid = _required(path, elem, "id", sid)
    etype = _required(path, elem, "type", sid)
    raw = _required(path, elem, "charOffset", sid)
    written = _required(path, elem, "text", sid)
    where = f"sentence {sid}, entity {eid}"
    spans: list[tuple[int, int]] = []
    for part in raw.split(";"):
        m = _RANGE.match(part)
        if not m or int(m.group(2)) < int(m.group(1)):
            raise MalformedInputError(
                path,
                f"{where}: charOffset {raw!r} is not 'start-end[;start-end...]'",
                line=elem.sourceline,
                record=doc.id,
            )
        spans.append((int(m.group(1)), int(m.group(2)) + 1))  # inclusive end -> half-open
    if not _selects(text, spans, written):
        moved = next((sh for sh in (1, -1) if _selects(text, [(s + sh, e + sh) for s, e in spans], written)), None)
        if moved is None:
            found = [text[s:e] for s, e in spans] if all(0 <= s <= e <= len(text) for s, e in spans) else None
            what = f"select {found!r}" if found is not None else f"fall outside the sentence (length {len(text)})"
            raise OffsetMismatchError(
                path,
                f"{where}: charOffset {raw} (end inclusive) {what}, but the entity text is {written!r}",
                line=elem.sourceline,
                record=doc.id,
            )
        log.warning(
            "%s, line %s, %s: charOffset %s is one character off %r; read at the offsets moved by %+d",
            path,
            elem.sourceline,
            where,
            raw,
            written,
            moved,
        )
        spans = [(s + moved, e + moved) for s, e in spans]
        extra.setdefault("moved_offsets", {})[eid] = raw
    return Entity(
        id=eid, type=etype, text=[text[s:e] for s, e in spans], offsets=[[start + s, start + e] for s, e in spans]
    )


def _selects(text: str, spans: list[tuple[int, int]], written: str) -> bool:
    """True when the spans lie in `text` and their fragments, joined by a space or nothing, are `written`."""
    if not all(0 <= s <= e <= len(text) for s, e in spans):
        return False
    frags = [text[s:e] for s, e in spans]
    return written in (" ".join(frags), "".join(frags))


def _pair(path: Path, doc: Document, sid: str, elem: Any, local: set[str], extra: dict[str, Any]) -> None:
    pid = _required(path, elem, "id", sid)
    flag = _required(path, elem, "ddi", sid).strip().lower()
    if flag not in ("true", "false"):
        raise MalformedInputError(
            path,
            f"sentence {sid}, pair {pid}: ddi={flag!r} is not 'true' or 'false'",
            line=elem.sourceline,
            record=doc.id,
        )
    args = [_required(path, elem, name, sid) for name in ("e1", "e2")]
    for arg in args:
        if arg not in local:
            raise MalformedInputError(
                path,
                f"sentence {sid}, pair {pid}: {arg!r} is not an entity of the sentence before the pair",
                line=elem.sourceline,
                record=doc.id,
            )
    if flag == "false":
        return
    rtype = (elem.get("type") or "").strip()
    if not rtype:
        rtype = UNTYPED_PAIR_TYPE
        extra.setdefault("untyped_pairs", []).append(pid)
        log.warning(
            "%s, line %s, sentence %s: positive pair %s has no type; read as %r", path, elem.sourceline, sid, pid, rtype
        )
    doc.relations.append(Relation(id=pid, type=rtype, arg1_id=args[0], arg2_id=args[1]))


__all__ = ["read_ddi", "FORMAT_NAME", "UNTYPED_PAIR_TYPE"]
