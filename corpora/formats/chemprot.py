"""ChemProt (BioCreative VI, original release) TSV sets: `*_abstracts.tsv` with its siblings.

The input is the `*_abstracts.tsv` file (`PMID<TAB>title<TAB>abstract`); beside it:

- `*_entities.tsv` (required): `PMID<TAB>Tn<TAB>CHEMICAL|GENE-Y|GENE-N<TAB>start<TAB>end<TAB>text`,
  offsets into title + " " + abstract. Every offset is checked: a mismatch raises
  `OffsetMismatchError` naming the entities file, its line and the PMID. Entity ids stay `Tn`
  (unique within a document; a repeated id is a `MalformedInputError`).
- `*_relations.tsv` (optional): `PMID<TAB>CPR:n<TAB>Y |N <TAB>fine type<TAB>Arg1:Tc<TAB>Arg2:Tg`.
- `*_gold_standard.tsv` (optional): `PMID<TAB>CPR:n<TAB>Arg1:Tc<TAB>Arg2:Tg`, the relations of the
  five evaluated groups (CPR:3, 4, 5, 6, 9) that the official evaluation scores.

Documents: id and document_id = PMID; passages "title" and "abstract" joined by one space.

Relations (the choice this module makes): `Relation.type` is the CPR group ("CPR:4").

- By default (`all_relations=False`) a Document holds the gold-standard relations only, one per
  distinct (group, Arg1, Arg2) line of `*_gold_standard.tsv`, since these are what ChemProt RE is
  trained and scored on. Without a gold-standard file, the relations flagged `Y` in an evaluated
  group stand in for it (in the official files the two sets are the same).
- With `all_relations=True` every line of `*_relations.tsv` is a relation (all ten groups, `N`
  flags included), plus any gold-standard line that `*_relations.tsv` lacks.

Relation ids are `R1`, `R2`, ... in file order per document. The fine type ("INHIBITOR"), the
evaluation flag ("Y"/"N", stripped of its trailing space) and whether the relation is in the gold
standard are kept in `metadata.extra` as JSON:
`{"chemprot": {"relations": {"R1": {"fine_type": "INHIBITOR", "eval": "Y", "gold_standard": true}}}}`
(`fine_type`/`eval` are null for a gold-standard line with no `*_relations.tsv` line).

Memory: the abstracts are streamed, but the siblings are grouped by PMID in an order that differs
from the abstracts file (entities are contiguous per PMID, not aligned with the abstracts), so each
sibling is indexed by PMID first. ChemProt sets are small (about 1,000 abstracts, 13,000 entities
per split), so that costs a few MB; a sibling larger than the collection limit
(`corpora.formats.limits`, 256 MB) is refused rather than indexed. Sibling lines whose PMID has no
abstract raise `MalformedInputError` after the last Document.

`source.sha256` hashes the abstracts file only; callers that cache on it should also hash the
siblings (see `companion_paths`).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from corpora.errors import DocumentTooLargeError, InputError, MalformedInputError, OffsetMismatchError
from corpora.formats.limits import COLLECTION_ENV, describe, max_collection_bytes
from corpora.formats.textio import iter_lines, sha256_file
from corpora.schema import Document, Entity, Metadata, Relation, Source, passages_from_texts

FORMAT_NAME = "chemprot"
MAIN_SUFFIX = "_abstracts.tsv"
ENTITY_TYPES = frozenset({"CHEMICAL", "GENE-Y", "GENE-N"})
EVALUATED_GROUPS = frozenset({"CPR:3", "CPR:4", "CPR:5", "CPR:6", "CPR:9"})
_GROUP = re.compile(r"^CPR:\d+$")
_ARG = re.compile(r"^Arg([12]):(\S+)$")


@dataclass(frozen=True)
class _EntityRow:
    line: int
    id: str
    type: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class _RelationRow:
    line: int
    group: str
    flag: str | None
    fine_type: str | None
    arg1: str
    arg2: str

    @property
    def key(self) -> tuple[str, str, str]:
        return self.group, self.arg1, self.arg2


def companion_paths(path: str | Path) -> dict[str, Path]:
    """The sibling files of an `*_abstracts.tsv` path (whether or not they exist)."""
    p = Path(path)
    if not p.name.endswith(MAIN_SUFFIX):
        raise InputError(p, f"a ChemProt input must be the *{MAIN_SUFFIX} file of a set")
    base = p.name[: -len(MAIN_SUFFIX)]
    return {kind: p.with_name(f"{base}_{kind}.tsv") for kind in ("entities", "relations", "gold_standard")}


def read_chemprot(path: str | Path, *, all_relations: bool = False) -> Iterator[Document]:
    """Stream one Document per abstract; see the module docstring for relations and metadata."""
    p = Path(path)
    siblings = companion_paths(p)
    if not siblings["entities"].exists():
        raise InputError(siblings["entities"], f"ChemProt entities file is missing (required beside {p.name})")
    entities = _index(siblings["entities"], _entity_row)
    relations = _index(siblings["relations"], _relation_row) if siblings["relations"].exists() else {}
    gold = _index(siblings["gold_standard"], _gold_row) if siblings["gold_standard"].exists() else None
    source = Source(path=str(p), sha256=sha256_file(p), format=FORMAT_NAME)
    seen: set[str] = set()
    for lineno, raw in iter_lines(p):
        if not raw.strip():
            continue
        cols = raw.split("\t")
        if len(cols) != 3:
            raise MalformedInputError(
                p, f"expected 3 tab-separated columns (PMID, title, abstract), found {len(cols)}", line=lineno
            )
        pmid, title, abstract = cols
        if pmid in seen:
            raise MalformedInputError(p, f"PMID {pmid} appears twice", line=lineno, record=pmid)
        seen.add(pmid)
        doc = Document(
            id=pmid,
            document_id=pmid,
            source=source,
            passages=passages_from_texts([("title", title), ("abstract", abstract)], " ", f"{pmid}."),
        )
        _add_entities(doc, entities.pop(pmid, []), siblings["entities"])
        gold_rows = None if gold is None else gold.pop(pmid, [])
        _add_relations(doc, relations.pop(pmid, []), gold_rows, siblings, all_relations)
        yield doc
    for kind, index in (("entities", entities), ("relations", relations), ("gold_standard", gold or {})):
        if index:
            pmid, rows = min(index.items(), key=lambda item: item[1][0].line)
            raise MalformedInputError(
                siblings[kind],
                f"PMID {pmid} has no abstract in {p.name} ({len(index)} PMIDs without one)",
                line=rows[0].line,
                record=pmid,
            )


def _index(path: Path, parse) -> dict[str, list]:
    """Group a sibling file's parsed rows by PMID, keeping file order and line numbers.

    The index is held whole, so the sibling is bounded as a whole, by the collection limit of
    `corpora.formats.limits` (256 MB; real sets are a few MB)."""
    index: dict[str, list] = defaultdict(list)
    limit = max_collection_bytes()
    size = 0
    for lineno, raw in iter_lines(path):
        size += len(raw) + 1
        if size > limit:
            raise DocumentTooLargeError(
                path,
                f"this ChemProt sibling is indexed whole and is larger than {describe(limit, COLLECTION_ENV)}",
                line=lineno,
            )
        if not raw.strip():
            continue
        pmid, row = parse(path, lineno, raw.split("\t"))
        index[pmid].append(row)
    return dict(index)


def _entity_row(path: Path, line: int, cols: list[str]) -> tuple[str, _EntityRow]:
    if len(cols) != 6:
        raise MalformedInputError(
            path, f"expected 6 tab-separated columns (PMID, id, type, start, end, text), found {len(cols)}", line=line
        )
    pmid, tid, etype, start, end, text = cols
    if etype not in ENTITY_TYPES:
        raise MalformedInputError(
            path, f"entity type {etype!r} is not one of {', '.join(sorted(ENTITY_TYPES))}", line=line, record=pmid
        )
    try:
        s, e = int(start), int(end)
    except ValueError as exc:
        raise MalformedInputError(path, f"offsets {start!r}, {end!r} are not integers", line=line, record=pmid) from exc
    return pmid, _EntityRow(line, tid, etype, s, e, text)


def _args(path: Path, line: int, pmid: str, a1: str, a2: str) -> tuple[str, str]:
    m1, m2 = _ARG.match(a1.strip()), _ARG.match(a2.strip())
    if not (m1 and m2 and m1.group(1) == "1" and m2.group(1) == "2"):
        raise MalformedInputError(path, f"arguments {a1!r}, {a2!r} are not Arg1:Tn and Arg2:Tn", line=line, record=pmid)
    return m1.group(2), m2.group(2)


def _group(path: Path, line: int, pmid: str, group: str) -> str:
    if not _GROUP.match(group):
        raise MalformedInputError(path, f"relation group {group!r} is not CPR:n", line=line, record=pmid)
    return group


def _relation_row(path: Path, line: int, cols: list[str]) -> tuple[str, _RelationRow]:
    if len(cols) != 6:
        raise MalformedInputError(
            path,
            f"expected 6 tab-separated columns (PMID, CPR group, eval flag, type, Arg1, Arg2), found {len(cols)}",
            line=line,
        )
    pmid, group, flag, fine, a1, a2 = cols
    flag = flag.strip()
    if flag not in ("Y", "N"):
        raise MalformedInputError(path, f"evaluation flag {cols[2]!r} is not 'Y ' or 'N '", line=line, record=pmid)
    arg1, arg2 = _args(path, line, pmid, a1, a2)
    return pmid, _RelationRow(line, _group(path, line, pmid, group), flag, fine.strip(), arg1, arg2)


def _gold_row(path: Path, line: int, cols: list[str]) -> tuple[str, _RelationRow]:
    if len(cols) != 4:
        raise MalformedInputError(
            path, f"expected 4 tab-separated columns (PMID, CPR group, Arg1, Arg2), found {len(cols)}", line=line
        )
    pmid, group, a1, a2 = cols
    arg1, arg2 = _args(path, line, pmid, a1, a2)
    return pmid, _RelationRow(line, _group(path, line, pmid, group), None, None, arg1, arg2)


def _add_entities(doc: Document, rows: list[_EntityRow], path: Path) -> None:
    text = doc.text
    seen: set[str] = set()
    for row in rows:
        if row.id in seen:
            raise MalformedInputError(
                path, f"entity id {row.id} repeats within PMID {doc.id}", line=row.line, record=doc.id
            )
        found = text[row.start : row.end] if 0 <= row.start <= row.end <= len(text) else None
        if found != row.text:
            what = f"select {found!r}" if found is not None else f"fall outside the text (length {len(text)})"
            raise OffsetMismatchError(
                path,
                f"entity {row.id} offsets {row.start}-{row.end} {what}, but the entity text is {row.text!r}",
                line=row.line,
                record=doc.id,
            )
        seen.add(row.id)
        doc.entities.append(Entity(id=row.id, type=row.type, text=[row.text], offsets=[[row.start, row.end]]))


def _add_relations(
    doc: Document,
    rows: list[_RelationRow],
    gold_rows: list[_RelationRow] | None,
    files: dict[str, Path],
    all_relations: bool,
) -> None:
    """Pick relations per the module's rule, check their arguments, record fine type and flags."""
    if gold_rows is None:
        gold_keys = {r.key for r in rows if r.flag == "Y" and r.group in EVALUATED_GROUPS}
        gold_lines: dict[tuple[str, str, str], _RelationRow] = {}
    else:
        gold_keys = {r.key for r in gold_rows}
        gold_lines = {}
        for r in gold_rows:
            gold_lines.setdefault(r.key, r)
    annotated: dict[tuple[str, str, str], _RelationRow] = {}
    for r in rows:
        annotated.setdefault(r.key, r)
    chosen: list[tuple[_RelationRow, str]] = []  # (row, file kind)
    if all_relations:
        chosen = [(r, "relations") for r in rows] + [
            (r, "gold_standard") for k, r in gold_lines.items() if k not in annotated
        ]
    elif gold_rows is None:
        chosen = [(annotated[k], "relations") for k in annotated if k in gold_keys]
    else:
        chosen = [
            (annotated.get(k, r), "relations" if k in annotated else "gold_standard") for k, r in gold_lines.items()
        ]
    ids = {e.id: e for e in doc.entities}
    extra: dict[str, dict] = {}
    for row, kind in chosen:
        for arg in (row.arg1, row.arg2):
            if arg not in ids:
                raise MalformedInputError(
                    files[kind],
                    f"relation argument {arg} is not an entity of PMID {doc.id}",
                    line=row.line,
                    record=doc.id,
                )
        rid = f"R{len(doc.relations) + 1}"
        doc.relations.append(Relation(id=rid, type=row.group, arg1_id=row.arg1, arg2_id=row.arg2))
        extra[rid] = {"fine_type": row.fine_type, "eval": row.flag, "gold_standard": row.key in gold_keys}
    if extra:
        doc.metadata = Metadata(extra=json.dumps({"chemprot": {"relations": extra}}))


__all__ = ["read_chemprot", "companion_paths", "EVALUATED_GROUPS", "ENTITY_TYPES"]
