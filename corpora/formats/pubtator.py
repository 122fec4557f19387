"""PubTator reader and writer (NCBI-disease, BC5CDR, tmVar and PubTator exports).

Format, one block per document, blocks separated by blank lines::

    PMID|t|title
    PMID|a|abstract
    PMID<TAB>start<TAB>end<TAB>mention<TAB>type<TAB>ids[<TAB>extra]
    PMID<TAB>REL<TAB>concept1<TAB>concept2

Mapping to the schema:

- text = title + " " + abstract; passages `{PMID}-P0` (title) and `{PMID}-P1` (abstract, present
  even when empty so offsets stay defined). Entities `{PMID}-T{n}`, relations `{PMID}-R{n}`, in
  file order; `Document.id == document_id == PMID`.
- The id column becomes normalizations (`corpora.formats.concept_ids.parse_ids`: `D1|D2`, `D1+D2`, `-1`).
- Relation lines (BC5CDR `CID`) link concepts; each argument is anchored on the concept's first
  mention (`corpora.formats.concept_ids.first_mention`) and the concept ids are kept in `normalized`.
- What the schema has no field for is kept in `metadata.extra` as `{"pubtator": {...}}`, each map
  keyed by entity/relation id and present only when needed: `column7` (the 7th column: BC5CDR's
  individual mentions of a composite, tmVar's RSID), `ids` (the raw id column when it is not
  what the normalizations render to, e.g. `D1+D2` or ` D008661`), `text` (the raw mention column
  when trailing whitespace was stripped), `relation_ids` (raw concept columns when they differ).

Checks: mention text must equal `text[start:end]`; a mention column with trailing whitespace is
accepted when the stripped text matches (NCBI train, PMID 10923035) and the entity text is the
stripped one. Otherwise OffsetMismatchError. Malformed lines, a mention before its title, a
document without an abstract line, and a plain file whose last line has no newline (a file cut
mid-line) raise MalformedInputError with the line number.

Normalisations of the writer: one blank line after every document (so a leading empty line, a
missing blank line between documents or a missing final blank line are not reproduced), and
relation lines after the mention lines. Everything else is written back as read.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from corpora.errors import BiomedError, MalformedInputError, OffsetMismatchError
from corpora.formats.concept_ids import (
    CONCEPT_ROLES,
    dump_extra,
    first_mention,
    load_extra,
    parse_ids,
    render_id,
    render_ids,
)
from corpora.formats.limits import max_document_bytes, too_large
from corpora.formats.textio import is_gzip, iter_lines, open_output, sha256_file
from corpora.schema import Document, Entity, Metadata, Normalization, Relation, Source, passages_from_texts

FORMAT = "pubtator"
_TEXT_LINE = re.compile(r"^([^\t|]+)\|([ta])\|(.*)$")


@dataclass
class _Pending:
    """The document being read: its lines are collected until the block ends."""

    pmid: str
    title_line: int
    title: str
    abstract: str | None = None
    text: str = ""
    entities: list[Entity] = field(default_factory=list)
    relation_rows: list[tuple[int, str, str, str]] = field(default_factory=list)
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)

    def note(self, section: str, key: str, value: Any) -> None:
        self.extra.setdefault(section, {})[key] = value


def read_pubtator(path: str | Path) -> Iterator[Document]:
    """Stream the documents of a PubTator file (plain or gzip), checking every mention's offsets."""
    source = Source(path=str(path), sha256=sha256_file(path), format=FORMAT)
    doc: _Pending | None = None
    last_line = 0
    limit = max_document_bytes()
    doc_size = 0
    for lineno, line in iter_lines(path):
        last_line = lineno
        doc_size += len(line) + 1
        if doc is not None and doc_size > limit:
            raise too_large(path, f"document {doc.pmid} (from line {doc.title_line})", doc_size, limit, line=lineno)
        if not line.strip():
            if doc is not None:
                yield _finish(doc, path, source)
                doc = None
            continue
        m = _TEXT_LINE.match(line)
        if m:
            pmid, kind, body = m.groups()
            if kind == "t":
                if doc is not None:
                    if doc.pmid == pmid:
                        raise MalformedInputError(
                            path, "a second title line for the same document", line=lineno, record=pmid
                        )
                    yield _finish(doc, path, source)
                doc = _Pending(pmid, lineno, body)
                doc_size = len(line) + 1
            else:
                if doc is None or doc.pmid != pmid:
                    raise MalformedInputError(
                        path, "abstract line before its document's title line", line=lineno, record=pmid
                    )
                if doc.abstract is not None:
                    raise MalformedInputError(
                        path, "a second abstract line for the same document", line=lineno, record=pmid
                    )
                doc.abstract = body
                doc.text = doc.title + " " + body
            continue
        cols = line.split("\t")
        pmid = cols[0]
        if doc is None or doc.pmid != pmid:
            raise MalformedInputError(
                path, f"annotation line before its document's title line: {_clip(line)!r}", line=lineno, record=pmid
            )
        if doc.abstract is None:
            raise MalformedInputError(
                path, f"annotation line before the document's abstract line: {_clip(line)!r}", line=lineno, record=pmid
            )
        if len(cols) == 4 and not cols[1].strip().lstrip("-").isdigit():
            doc.relation_rows.append((lineno, cols[1], cols[2], cols[3]))
        elif len(cols) in (6, 7):
            _add_mention(doc, cols, path, lineno)
        else:
            raise MalformedInputError(
                path,
                f"expected a mention line (6 or 7 tab-separated columns) or a relation line (4 columns), "
                f"got {len(cols)} columns: {_clip(line)!r}",
                line=lineno,
                record=pmid,
            )
    if doc is not None:
        yield _finish(doc, path, source)
    _check_final_newline(path, last_line)


def _add_mention(doc: _Pending, cols: list[str], path: str | Path, lineno: int) -> None:
    pmid, start_s, end_s, mention, etype, ids = cols[:6]
    try:
        start, end = int(start_s), int(end_s)
    except ValueError:
        raise MalformedInputError(
            path, f"mention offsets must be integers, got {start_s!r} and {end_s!r}", line=lineno, record=pmid
        ) from None
    if not 0 <= start <= end <= len(doc.text):
        raise OffsetMismatchError(
            path,
            f"mention offsets {start}-{end} fall outside the document text (length {len(doc.text)})",
            line=lineno,
            record=pmid,
        )
    found = doc.text[start:end]
    eid = f"{pmid}-T{len(doc.entities)}"
    text = mention
    if found != mention:
        if mention.rstrip() == found:
            text = found
            doc.note("text", eid, mention)
        else:
            raise OffsetMismatchError(
                path,
                f"mention offsets {start}-{end} select {found!r}, but the mention text is {mention!r}",
                line=lineno,
                record=pmid,
            )
    normalized = parse_ids(ids)
    if render_ids(normalized) != ids:
        doc.note("ids", eid, ids)
    if len(cols) == 7:
        doc.note("column7", eid, cols[6])
    doc.entities.append(Entity(id=eid, type=etype, text=[text], offsets=[[start, end]], normalized=normalized))


def _finish(doc: _Pending, path: str | Path, source: Source) -> Document:
    if doc.abstract is None:
        raise MalformedInputError(
            path, "document ends without its abstract line (truncated file?)", line=doc.title_line, record=doc.pmid
        )
    relations = [_relation(doc, i, row, path) for i, row in enumerate(doc.relation_rows)]
    extra = dump_extra({"pubtator": doc.extra} if doc.extra else {})
    return Document(
        id=doc.pmid,
        document_id=doc.pmid,
        source=source,
        passages=passages_from_texts([("title", doc.title), ("abstract", doc.abstract)], id_prefix=f"{doc.pmid}-P"),
        entities=doc.entities,
        relations=relations,
        metadata=Metadata(extra=extra),
    )


def _relation(doc: _Pending, index: int, row: tuple[int, str, str, str], path: str | Path) -> Relation:
    lineno, rtype, raw1, raw2 = row
    rid = f"{doc.pmid}-R{index}"
    roles = CONCEPT_ROLES.get(rtype, (None, None))
    concepts: list[Normalization] = []
    args: list[str] = []
    for raw, role in zip((raw1, raw2), roles):
        norms = parse_ids(raw)
        if len(norms) != 1:
            raise MalformedInputError(
                path, f"relation {rtype} needs one concept id per argument, got {raw!r}", line=lineno, record=doc.pmid
            )
        anchor = first_mention(doc.entities, norms[0], role)
        if anchor is None:
            raise MalformedInputError(
                path, f"relation {rtype}: concept {raw!r} has no mention in the document", line=lineno, record=doc.pmid
            )
        concepts.append(norms[0])
        args.append(anchor.id)
    if [render_id(c) for c in concepts] != [raw1, raw2]:
        doc.note("relation_ids", rid, [raw1, raw2])
    return Relation(id=rid, type=rtype, arg1_id=args[0], arg2_id=args[1], normalized=concepts)


def _check_final_newline(path: str | Path, last_line: int) -> None:
    """A plain file cut mid-line ends without a newline (a truncated gzip is caught by textio)."""
    if is_gzip(path):
        return
    with open(path, "rb") as fh:
        fh.seek(0, io.SEEK_END)
        if fh.tell() == 0:
            return
        fh.seek(-1, io.SEEK_END)
        if fh.read(1) != b"\n":
            raise MalformedInputError(path, "the last line has no newline: the file looks truncated", line=last_line)


def _clip(line: str, n: int = 80) -> str:
    return line if len(line) <= n else line[:n] + "..."


# ---------------------------------------------------------------------------------------- writer


def write_pubtator(docs: Iterable[Document], path_or_fh: str | Path | IO[str]) -> int:
    """Write documents as PubTator (gzip when the path ends in .gz); returns the number written.

    A document must be a title passage at offset 0 followed by the abstract one space later (any
    further passages are part of the abstract text); entities must be single spans; relations need
    two concept ids (from `normalized`, else the arguments' first normalization).
    """
    n = 0
    with open_output(path_or_fh) as out:
        for doc in docs:
            out.write(format_document(doc))
            n += 1
    return n


def format_document(doc: Document) -> str:
    """One document block, ending with its blank line."""
    pmid = doc.document_id
    extra = load_extra(doc.metadata.extra).get("pubtator", {})
    raw_text, raw_ids, column7, raw_rel = (extra.get(k, {}) for k in ("text", "ids", "column7", "relation_ids"))
    title, abstract = _title_abstract(doc)
    lines = [f"{pmid}|t|{title}", f"{pmid}|a|{abstract}"]
    for ent in doc.entities:
        if len(ent.offsets) != 1:
            raise BiomedError(
                f"document {pmid}: entity {ent.id} has {len(ent.offsets)} spans; PubTator mentions are single spans"
            )
        (start, end), text = ent.offsets[0], raw_text.get(ent.id, ent.text[0])
        ids = raw_ids.get(ent.id, render_ids(ent.normalized))
        cols = [pmid, str(start), str(end), text, ent.type, ids]
        if ent.id in column7:
            cols.append(column7[ent.id])
        lines.append("\t".join(_checked(c, pmid, ent.id) for c in cols))
    by_id = {e.id: e for e in doc.entities}
    for rel in doc.relations:
        concepts = raw_rel.get(rel.id) or [render_id(c) for c in _concepts(rel, by_id, pmid)]
        lines.append("\t".join(_checked(c, pmid, rel.id) for c in [pmid, rel.type, *concepts]))
    return "\n".join(lines) + "\n\n"


def _title_abstract(doc: Document) -> tuple[str, str]:
    if not doc.passages:
        return "", ""
    first = min(doc.passages, key=lambda p: p.offsets[0][0])
    if first.offsets[0][0] != 0:
        raise BiomedError(
            f"document {doc.document_id}: the first passage starts at {first.offsets[0][0]}, "
            "PubTator needs a title at 0"
        )
    text = doc.text
    title = first.text
    if len(text) > len(title) and text[len(title)] != " ":
        raise BiomedError(
            f"document {doc.document_id}: the title is not followed by a space, so PubTator offsets would shift"
        )
    for part, name in ((title, "title"), (text[len(title) + 1 :], "abstract")):
        if "\n" in part or "\r" in part:
            raise BiomedError(
                f"document {doc.document_id}: the {name} contains a line break, which PubTator cannot hold"
            )
    return title, text[len(title) + 1 :]


def _concepts(rel: Relation, by_id: dict[str, Entity], pmid: str) -> list[Normalization]:
    if len(rel.normalized) == 2:
        return list(rel.normalized)
    found = []
    for arg in (rel.arg1_id, rel.arg2_id):
        ent = by_id.get(arg)
        if ent is None or not ent.normalized:
            raise BiomedError(f"document {pmid}: relation {rel.id} has no concept id for argument {arg!r}")
        found.append(ent.normalized[0])
    return found


def _checked(col: str, pmid: str, what: str) -> str:
    if "\t" in col or "\n" in col:
        raise BiomedError(f"document {pmid}: {what} has a tab or line break in {col!r}, which PubTator cannot hold")
    return col
