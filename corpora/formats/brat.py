"""brat standoff: an `.ann` annotation file with its `.txt` text beside it, one Document per pair.

The input is the `.ann` path; the `.txt` with the same stem gives the text (a missing `.txt` is an
`InputError` naming it). Document id and document_id = the file stem (a PMID for JNLPBA/GENIA).

Text and passages: the `.txt` is split into passages at line breaks (each non-blank line is one
passage, offsets exact into the `.txt`). A file with one such line has one passage of type "text";
with several, the first line is the "title" (the JNLPBA/GENIA and BioNLP shared-task layout) and the
rest are "abstract" when there is one more line, else "paragraph". Following the schema,
`Document.text` fills the gaps between passages with spaces, so it equals the `.txt` with every line
break character replaced by a space (offsets are unchanged), cut after the last non-blank line.

Lines of the `.ann` (tab-separated; a blank line is skipped, any other prefix is an error):

- `T`: text-bound annotation `T1<TAB>Type s1 e1;s2 e2<TAB>text` -> Entity `T1` with one offset pair
  per fragment (discontinuous spans kept). Each fragment must lie inside the text and the text
  column must equal the fragments' text joined by a space (brat's convention) or by nothing (as in
  some tools' output); line breaks inside a span count as spaces, as brat writes them. A mismatch is
  an `OffsetMismatchError` naming the `.ann` and its line. A `T` line without a text column is
  checked for bounds only.
- `R`: `R1<TAB>Type Arg1:T1 Arg2:T2` -> Relation `R1` (role names are dropped, their order kept).
- `E`: `E1<TAB>Type:T3 Theme:T1 Cause:E2` -> the trigger is already an Entity (its `T` line); each
  argument becomes a Relation from the trigger to the argument, id `E1.1`, `E1.2`, ..., type
  `f"{event type}:{role}"` ("PPI:Arg1"). An argument (or relation argument) that is an event is
  replaced by that event's trigger entity.
- `N`: `N1<TAB>Reference T1 db:id<TAB>name` -> `Normalization(db, id)` on the entity.
- `A`/`M` attributes, `*` equivalences, `#` notes and the events themselves have no field of their
  own in the schema; they are kept in `metadata.extra` as JSON (`null` when there are none):
  `{"brat": {"attributes": [{"id", "type", "target", "value"}], "equivalences": [{"type", "ids"}],
  "notes": [{"id", "type", "target", "text"}], "events": [{"id", "type", "trigger", "arguments":
  [[role, id], ...]}]}}` (only the non-empty lists).

Ids that repeat or point at nothing are a `MalformedInputError` naming the `.ann` and line. An
`.ann` whose last line has no newline is read with a warning unless that line checks itself (a `T`
line with its text column): a cut line cannot be told from a whole one, and files written by hand
(the bundled `example1.ann`) often end that way. The `.txt` and the `.ann` are each bounded by the
per-document limit (`corpora.formats.limits`).
`source.sha256` hashes the `.ann` only.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from corpora.errors import InputError, MalformedInputError, OffsetMismatchError
from corpora.formats.textio import read_text, sha256_file
from corpora.schema import Document, Entity, Metadata, Normalization, Passage, Relation, Source

log = logging.getLogger(__name__)

FORMAT_NAME = "brat"
_SPAN = re.compile(r"^(\d+) (\d+)$")


@dataclass
class _Pending:
    """References resolved once every line is read (brat allows forward references)."""

    relations: list[tuple[int, Relation]] = field(default_factory=list)
    normalizations: list[tuple[int, str, Normalization]] = field(default_factory=list)
    events: dict[str, tuple[int, str, str, list[tuple[str, str]]]] = field(default_factory=dict)
    targets: list[tuple[int, str, str]] = field(default_factory=list)  # (line, annotation, target id)


def text_path(ann: str | Path) -> Path:
    return Path(ann).with_suffix(".txt")


def split_passages(text: str, id_prefix: str = "") -> list[Passage]:
    """One passage per non-blank line of `text`, offsets exact; types as the module docstring says."""
    spans = [(m.start(), m.end()) for m in re.finditer(r"[^\r\n]+", text) if text[m.start() : m.end()].strip()]
    if len(spans) == 1:
        types = ["text"]
    elif len(spans) == 2:
        types = ["title", "abstract"]
    else:
        types = ["title"] + ["paragraph"] * (len(spans) - 1)
    return [Passage(f"{id_prefix}{i}", t, text[s:e], [[s, e]]) for i, (t, (s, e)) in enumerate(zip(types, spans))]


def read_brat(path: str | Path) -> Iterator[Document]:
    """Yield the one Document of an `.ann`/`.txt` pair."""
    ann = Path(path)
    txt = text_path(ann)
    if not txt.exists():
        raise InputError(txt, f"brat text file is missing (needed by {ann.name})")
    raw_text = read_text(txt)
    stem = ann.stem
    doc = Document(id=stem, document_id=stem, source=Source(path=str(ann), sha256=sha256_file(ann), format=FORMAT_NAME))
    doc.passages = split_passages(raw_text, f"{stem}.")
    text = doc.text
    extra: dict[str, list] = {"attributes": [], "equivalences": [], "notes": [], "events": []}
    pending = _Pending()
    ids: set[str] = set()
    ann_text = read_text(ann)
    _check_last_line(ann, ann_text)
    for lineno, line in enumerate(ann_text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        cols = line.split("\t", 2)
        ann_id = cols[0].strip()
        kind = ann_id[:1]
        if kind not in "TREANM*#" or len(cols) < 2 or not cols[1].strip():
            raise MalformedInputError(ann, f"not a brat annotation line: {line!r}", line=lineno)
        if kind != "*":
            if ann_id in ids:
                raise MalformedInputError(ann, f"annotation id {ann_id} is used twice", line=lineno)
            ids.add(ann_id)
        fields = cols[1].split()
        if kind == "T":
            doc.entities.append(_text_bound(ann, lineno, ann_id, cols, text))
        elif kind == "R":
            args = [_role_arg(ann, lineno, a)[1] for a in fields[1:]]
            if len(args) != 2:
                raise MalformedInputError(ann, f"relation {ann_id} needs two arguments, has {len(args)}", line=lineno)
            pending.relations.append((lineno, Relation(ann_id, fields[0], args[0], args[1])))
        elif kind == "E":
            etype, trigger = _role_arg(ann, lineno, fields[0])
            pending.events[ann_id] = (lineno, etype, trigger, [_role_arg(ann, lineno, a) for a in fields[1:]])
        elif kind == "N":
            if len(fields) != 3 or ":" not in fields[2]:
                raise MalformedInputError(ann, f"normalization {ann_id} is not 'Type Tn db:id'", line=lineno)
            db_name, db_id = fields[2].split(":", 1)
            pending.normalizations.append((lineno, fields[1], Normalization(db_name, db_id)))
        elif kind in "AM":
            if len(fields) not in (2, 3):
                raise MalformedInputError(ann, f"attribute {ann_id} is not 'Type target [value]'", line=lineno)
            extra["attributes"].append(
                {"id": ann_id, "type": fields[0], "target": fields[1], "value": fields[2] if len(fields) == 3 else None}
            )
            pending.targets.append((lineno, ann_id, fields[1]))
        elif kind == "*":
            extra["equivalences"].append({"type": fields[0], "ids": fields[1:]})
            pending.targets.extend((lineno, f"equivalence {fields[0]}", ref) for ref in fields[1:])
        else:
            extra["notes"].append(
                {
                    "id": ann_id,
                    "type": fields[0],
                    "target": fields[1] if len(fields) > 1 else None,
                    "text": cols[2] if len(cols) > 2 else "",
                }
            )
            pending.targets.extend((lineno, ann_id, ref) for ref in fields[1:2])
    _resolve(ann, doc, pending, extra, ids)
    kept = {k: v for k, v in extra.items() if v}
    if kept:
        doc.metadata = Metadata(extra=json.dumps({"brat": kept}))
    yield doc


def _check_last_line(ann: Path, text: str) -> None:
    """A last line without its newline may be a cut one. A `T` line with its text column checks
    itself (its offsets must select that text); any other kind (an id `T1` cut from `T12`, a
    normalization id, a note) cannot, so it is read with a warning naming the line."""
    if not text or text.endswith("\n"):
        return
    last = text.rsplit("\n", 1)[-1].rstrip("\r")
    if last.startswith("T") and last.count("\t") >= 2:
        return
    log.warning(
        "%s, line %d: the last line has no newline, so a cut file cannot be told apart; check that it is whole: %r",
        ann,
        text.count("\n") + 1,
        last[:80],
    )


def _role_arg(ann: Path, line: int, item: str) -> tuple[str, str]:
    role, sep, ref = item.partition(":")
    if not sep or not role or not ref:
        raise MalformedInputError(ann, f"{item!r} is not Role:Id", line=line)
    return role, ref


def _text_bound(ann: Path, line: int, ann_id: str, cols: list[str], text: str) -> Entity:
    """Parse a `T` line and check that its offsets select its text column."""
    etype, _, spans = cols[1].partition(" ")
    offsets: list[list[int]] = []
    for frag in spans.split(";"):
        m = _SPAN.match(frag.strip())
        if not etype or not m:
            raise MalformedInputError(
                ann, f"text-bound {ann_id}: {cols[1]!r} is not 'Type start end[;start end...]'", line=line
            )
        s, e = int(m.group(1)), int(m.group(2))
        if not (0 <= s <= e <= len(text)):
            raise OffsetMismatchError(
                ann, f"text-bound {ann_id} offsets {s}-{e} fall outside the text (length {len(text)})", line=line
            )
        offsets.append([s, e])
    fragments = [text[s:e] for s, e in offsets]
    if len(cols) > 2:
        if cols[2] not in (" ".join(fragments), "".join(fragments)):
            raise OffsetMismatchError(
                ann,
                f"text-bound {ann_id} offsets {spans} select {fragments!r}, but the text column is {cols[2]!r}",
                line=line,
            )
    return Entity(id=ann_id, type=etype, text=fragments, offsets=offsets)


def _resolve(ann: Path, doc: Document, pending: _Pending, extra: dict[str, list], ids: set[str]) -> None:
    """Attach relations, event arguments and normalizations now that every id is known."""
    entities = {e.id: e for e in doc.entities}

    def entity_id(ref: str, line: int, what: str) -> str:
        seen = set()
        while ref in pending.events and ref not in seen:  # an event stands for its trigger
            seen.add(ref)
            ref = pending.events[ref][2]
        if ref not in entities:
            raise MalformedInputError(
                ann, f"{what} points at {ref!r}, which is not a text-bound annotation or event", line=line
            )
        return ref

    for line, rel in pending.relations:
        rel.arg1_id = entity_id(rel.arg1_id, line, f"relation {rel.id}")
        rel.arg2_id = entity_id(rel.arg2_id, line, f"relation {rel.id}")
        doc.relations.append(rel)
    for eid, (line, etype, trigger, args) in pending.events.items():
        if trigger not in entities:
            raise MalformedInputError(ann, f"event {eid} trigger {trigger!r} is not a text-bound annotation", line=line)
        for i, (role, ref) in enumerate(args, start=1):
            doc.relations.append(
                Relation(f"{eid}.{i}", f"{etype}:{role}", trigger, entity_id(ref, line, f"event {eid}"))
            )
        extra["events"].append({"id": eid, "type": etype, "trigger": trigger, "arguments": [list(a) for a in args]})
    for line, target, norm in pending.normalizations:
        entities[entity_id(target, line, "normalization")].normalized.append(norm)
    for line, what, target in pending.targets:
        if target not in ids:
            raise MalformedInputError(ann, f"{what} points at unknown annotation {target!r}", line=line)


__all__ = ["read_brat", "split_passages", "text_path"]
