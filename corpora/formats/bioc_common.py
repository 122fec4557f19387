"""BioC <-> schema mapping shared by the XML and the JSON reader/writer.

Both syntaxes are turned into the same plain structure (the BioC JSON shape: a document dict with
`id`, `infons`, `passages[{offset, infons, text, sentences, annotations, relations}]`,
`annotations`, `relations`; infons as dicts; XML adds `_line` to elements for error messages), so
the mapping below is written once.

Reading (BioC -> Document)
- `Document.id == document_id ==` the BioC document id; passages `{id}-P{i}` in file order, placed
  at their absolute `offset` (gaps are spaces, `corpora.schema.document_text`). A passage given as
  `sentence` elements gets its text from the sentences placed at their offsets; every sentence is
  also recorded in `Document.sentences` (sorted).
- Passage type: infon `type`, else `section_type`.
- Annotations (document, passage and sentence level) -> entities with the annotation id; one
  offset pair per `location`, and `text` is the document text at each location. The annotation's
  own text must match (for several locations: the parts joined by spaces, whitespace-insensitive,
  which is how BC5CDR writes "renal ... failure"); otherwise OffsetMismatchError, or with
  `mismatch="skip"` the annotation is dropped with a warning and listed in extra `bioc.skipped`.
- Entity type: infon `type`. Normalization infons (keys in NORMALIZATION_KEYS, case-insensitive:
  MESH, identifier, NCBI Gene, ...) -> `normalized`, db_name from the key or from an id prefix
  (`corpora.formats.concept_ids.parse_ids`, so `D1|D2` gives two and `-1` none). Infons `annotator` and
  (numeric) `score` fill those fields.
- Relations with nodes: arg1/arg2 = the first two nodes' refids (a one-node relation has
  arg2_id ""); refids must name annotations of the document. Relations without nodes (BC5CDR:
  `relation=CID, Chemical=D..., Disease=D...`) are concept relations: the two infons keyed by
  entity types are the concepts, each anchored on its first mention by the rule of
  `corpora.formats.concept_ids` (BC5CDR `IndividualMention`s are not eligible, as PubTator has none), and
  the concepts go to `normalized`. Relation type: infon `type`, else `relation`.
- Everything else goes to `metadata.extra` as `{"bioc": {...}}` (canonical JSON): `collection`
  (source, date, key, infons), `infons` (document), `passages` {passage id: infons},
  `sentences` {"start-end": infons}, `annotations` {id: {infons, norm (raw normalization infons
  when they do not re-render the same), text (the annotation text when not the joined parts)}},
  `relations` {id: {infons, nodes [[refid, role]] when not arg1/arg2, concepts {key: raw}}}.

Writing is in `corpora.formats.bioc_export`; it puts all of the above back where it came from.

Tested in `tests/corpora/formats/test_bioc_xml.py`.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

from corpora.errors import MalformedInputError, OffsetMismatchError
from corpora.formats.concept_ids import dump_extra, first_mention, load_extra, parse_ids, render_id
from corpora.formats.limits import check_offset, max_document_bytes
from corpora.schema import (
    Abbreviation,
    Document,
    Entity,
    MeshTerm,
    Metadata,
    Normalization,
    Passage,
    Relation,
    Source,
    Span,
    document_text,
)

NORMALIZATION_KEYS = frozenset(
    k.lower()
    for k in (
        "MESH",
        "identifier",
        "NCBI Gene",
        "NCBIGene",
        "NCBI_Gene",
        "Gene",
        "OMIM",
        "CHEBI",
        "NCBI Taxonomy",
        "Taxonomy",
        "UMLS",
        "CUI",
        "Entrez",
        "EntrezGene",
        "UniProt",
        "dbSNP",
        "Cellosaurus",
        "HGNC",
        "MONDO",
        "DOID",
    )
)
SCHEMA_INFON = "biomed:schema"
NORM_INFON = "biomed:normalized"
INDIVIDUAL_MENTION = "IndividualMention"
MISMATCH_POLICIES = ("error", "skip")


class _Where:
    """Where in the input we are, for error messages (file, line when known, document id)."""

    def __init__(self, path: str | Path, record: str, line: int | None) -> None:
        self.path, self.record, self.line = path, record, line
        self.limit = max_document_bytes()

    def offset(self, what: str, value: int, node: dict[str, Any] | None = None) -> None:
        """Refuse an offset that would pad the text past the per-document limit (before padding)."""
        check_offset(self.path, what, value, self.limit, line=_line(node, self.line), record=self.record)

    def malformed(self, msg: str, node: dict[str, Any] | None = None) -> MalformedInputError:
        return MalformedInputError(self.path, msg, line=_line(node, self.line), record=self.record)

    def mismatch(self, msg: str, node: dict[str, Any] | None = None) -> OffsetMismatchError:
        return OffsetMismatchError(self.path, msg, line=_line(node, self.line), record=self.record)


def _line(node: dict[str, Any] | None, default: int | None) -> int | None:
    return node.get("_line", default) if node else default


def _int(value: Any, what: str, where: _Where, node: dict[str, Any]) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        return int(value)
    except (TypeError, ValueError):
        raise where.malformed(f"{what} must be an integer, got {value!r}", node) from None


def _text_field(value: Any, what: str, where: _Where, node: dict[str, Any]) -> str | None:
    """A text field must be a string (or absent): `"text": 123` is malformed, not a TypeError later."""
    if value is None or isinstance(value, str):
        return value
    raise where.malformed(f"{what} must be a string, got {type(value).__name__} {_clip(value)}", node)


def _clip(value: Any, n: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= n else text[:n] + "..."


def _infons(node: dict[str, Any], where: _Where) -> dict[str, str]:
    raw = node.get("infons") or {}
    if not isinstance(raw, dict):
        raise where.malformed(f"infons must be an object, got {type(raw).__name__}", node)
    return {str(k): "" if v is None else str(v) for k, v in raw.items()}


def parse_norm_infons(raw: dict[str, str]) -> list[Normalization]:
    found: list[Normalization] = []
    for key, value in raw.items():
        found.extend(parse_ids(value, default_db=key))
    return found


def render_norm_infons(norms: list[Normalization]) -> dict[str, str]:
    grouped: dict[str, list[str]] = {}
    for n in norms:
        grouped.setdefault(n.db_name, []).append(n.db_id)
    return {db: "|".join(ids) for db, ids in grouped.items()}


def is_norm_key(key: str) -> bool:
    return key.lower() in NORMALIZATION_KEYS


def _pop_scored(infons: dict[str, str]) -> tuple[str | None, float | None]:
    annotator = infons.pop("annotator", None)
    score = None
    if "score" in infons:
        try:
            score = float(infons["score"])
            del infons["score"]
        except ValueError:
            pass
    return annotator, score


def squash_space(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


# --------------------------------------------------------------------------------------- reading


def collection_info(source: str | None, date: str | None, key: str | None, infons: dict[str, str]) -> dict[str, Any]:
    """The collection-level fields every document of the collection carries in its extra."""
    info: dict[str, Any] = {k: v for k, v in (("source", source), ("date", date), ("key", key)) if v}
    if infons:
        info["infons"] = dict(infons)
    return info


def document_from_bioc(
    node: dict[str, Any],
    collection: dict[str, Any],
    source: Source,
    *,
    line: int | None = None,
    record: str | None = None,
    mismatch: str = "error",
) -> Document:
    """Map one BioC document (JSON-shaped dict) to a Document; see the module docstring."""
    if mismatch not in MISMATCH_POLICIES:
        raise ValueError(f"mismatch must be one of {MISMATCH_POLICIES}, got {mismatch!r}")
    doc_id = node.get("id")
    where = _Where(source.path, str(doc_id if doc_id not in (None, "") else record), _line(node, line))
    if doc_id in (None, ""):
        raise where.malformed("document has no id", node)
    doc_id = str(doc_id)
    bioc: dict[str, Any] = {}
    if collection:
        bioc["collection"] = collection
    infons = _infons(node, where)
    schema = _schema_infon(infons.pop(SCHEMA_INFON, None), where, node)
    if infons:
        bioc["infons"] = infons

    passages: list[Passage] = []
    sentences: list[Span] = []
    ann_nodes: list[dict[str, Any]] = []
    rel_nodes: list[dict[str, Any]] = []
    for i, pnode in enumerate(_list(node, "passages", where)):
        passages.append(_passage(pnode, f"{doc_id}-P{i}", bioc, sentences, ann_nodes, rel_nodes, where))
    ann_nodes.extend(_list(node, "annotations", where))
    rel_nodes.extend(_list(node, "relations", where))
    try:
        text = document_text(passages)
    except ValueError as exc:
        raise where.malformed(str(exc), node) from None

    entities, eligible = _entities(ann_nodes, doc_id, text, bioc, where, mismatch)
    relations = _relations(rel_nodes, doc_id, entities, eligible, bioc, where)

    sentences.sort(key=lambda s: (s.start, s.end))
    try:
        return _with_schema(schema, doc_id, source, passages, entities, relations, sentences, bioc)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise where.malformed(f"infon {SCHEMA_INFON} does not describe a document ({exc})", node) from None


def _with_schema(
    schema: dict[str, Any],
    doc_id: str,
    source: Source,
    passages: list[Passage],
    entities: list[Entity],
    relations: list[Relation],
    sentences: list[Span],
    bioc: dict[str, Any],
) -> Document:
    """The Document, with what a `biomed:schema` infon carried over from our own writer."""
    extra: dict[str, Any] = {}
    if schema.get("extra"):
        extra = load_extra(schema["extra"]) if isinstance(schema["extra"], str) else dict(schema["extra"])
    if "collection" in schema:
        if schema["collection"]:
            bioc["collection"] = schema["collection"]
        else:
            bioc.pop("collection", None)
    _merge_bioc(extra, bioc)
    if schema.get("sentences"):
        extra_sents = [Span(int(s), int(e)) for s, e in schema["sentences"]]
        sentences = sorted(sentences + extra_sents, key=lambda s: (s.start, s.end)) if sentences else extra_sents
    md = dict(schema.get("metadata") or {})
    md["mesh_terms"] = [MeshTerm(**m) for m in md.get("mesh_terms") or []]
    return Document(
        id=str(schema.get("id", doc_id)),
        document_id=doc_id,
        source=source,
        passages=passages,
        entities=entities,
        relations=relations,
        sentences=sentences,
        tokens=[Span(int(s), int(e)) for s, e in schema.get("tokens") or []],
        abbreviations=[Abbreviation(**a) for a in schema.get("abbreviations") or []],
        metadata=Metadata(**md, extra=dump_extra(extra)),
    )


def _schema_infon(raw: str | None, where: _Where, node: dict[str, Any]) -> dict[str, Any]:
    if raw is None:
        return {}
    try:
        obj = json.loads(raw)
    except ValueError as exc:
        raise where.malformed(f"infon {SCHEMA_INFON} is not valid JSON ({exc})", node) from None
    if not isinstance(obj, dict):
        raise where.malformed(f"infon {SCHEMA_INFON} must be a JSON object", node)
    return obj


def _merge_bioc(extra: dict[str, Any], bioc: dict[str, Any]) -> None:
    """Merge the natively read BioC extras into the ones carried over in `biomed:schema`."""
    if bioc:
        extra["bioc"] = _deep_merge(extra.get("bioc") or {}, bioc)


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "collection":
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _list(node: dict[str, Any], key: str, where: _Where) -> list[dict[str, Any]]:
    value = node.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise where.malformed(f"{key} must be a list of objects", node)
    return value


def _passage(
    pnode: dict[str, Any],
    pid: str,
    bioc: dict[str, Any],
    sentences: list[Span],
    ann_nodes: list[dict[str, Any]],
    rel_nodes: list[dict[str, Any]],
    where: _Where,
) -> Passage:
    offset = _int(pnode.get("offset"), "passage offset", where, pnode)
    if offset < 0:
        raise where.malformed(f"passage offset {offset} is negative", pnode)
    where.offset("passage offset", offset, pnode)
    infons = _infons(pnode, where)
    ptype = infons.pop("type", None)
    if ptype is None:
        ptype = infons.pop("section_type", "")
    if infons:
        bioc.setdefault("passages", {})[pid] = infons
    text = _text_field(pnode.get("text"), "passage text", where, pnode) or ""
    snodes = _list(pnode, "sentences", where)
    placed: list[tuple[int, str, dict[str, Any]]] = []
    for snode in snodes:
        soff = _int(snode.get("offset"), "sentence offset", where, snode)
        where.offset("sentence offset", soff, snode)
        placed.append((soff, _text_field(snode.get("text"), "sentence text", where, snode) or "", snode))
    if placed and not text:
        parts: list[str] = []
        cursor = offset
        for soff, stext, snode in sorted(placed, key=lambda t: t[0]):
            if soff < cursor:
                raise where.malformed(
                    f"sentence at offset {soff} starts before offset {cursor} (passage start or previous sentence end)",
                    snode,
                )
            parts.append(" " * (soff - cursor) + stext)
            cursor = soff + len(stext)
        text = "".join(parts)
    for soff, stext, snode in placed:
        found = text[soff - offset : soff - offset + len(stext)] if soff >= offset else None
        if found != stext:
            raise where.mismatch(
                f"sentence at offset {soff} says {stext!r}, but the passage text there is {found!r}", snode
            )
        sentences.append(Span(soff, soff + len(stext)))
        sinfons = _infons(snode, where)
        if sinfons:
            bioc.setdefault("sentences", {})[f"{soff}-{soff + len(stext)}"] = sinfons
        ann_nodes.extend(_list(snode, "annotations", where))
        rel_nodes.extend(_list(snode, "relations", where))
    ann_nodes.extend(_list(pnode, "annotations", where))
    rel_nodes.extend(_list(pnode, "relations", where))
    return Passage(pid, ptype, text, [[offset, offset + len(text)]])


def _entities(
    ann_nodes: list[dict[str, Any]], doc_id: str, text: str, bioc: dict[str, Any], where: _Where, mismatch: str
) -> tuple[list[Entity], set[str]]:
    entities: list[Entity] = []
    ineligible: set[str] = set()
    seen: set[str] = set()
    for n, anode in enumerate(ann_nodes):
        aid = str(anode.get("id") or f"{doc_id}-A{n}")
        if aid in seen:
            raise where.malformed(f"annotation id {aid!r} occurs twice in the document", anode)
        seen.add(aid)
        infons = _infons(anode, where)
        etype = infons.pop("type", "")
        annotator, score = _pop_scored(infons)
        forced = infons.pop(NORM_INFON, None)
        norm_raw = {k: infons.pop(k) for k in list(infons) if is_norm_key(k)}
        normalized = _forced_norms(forced, where, anode) if forced is not None else parse_norm_infons(norm_raw)
        offsets = []
        locs = _list(anode, "locations", where)
        if not locs:
            raise where.malformed(f"annotation {aid} has no location", anode)
        for loc in locs:
            start = _int(loc.get("offset"), "location offset", where, anode)
            length = _int(loc.get("length"), "location length", where, anode)
            if start < 0 or length < 0 or start + length > len(text):
                raise where.mismatch(
                    f"annotation {aid} location {start}+{length} falls outside the document text (length {len(text)})",
                    anode,
                )
            offsets.append([start, start + length])
        parts = [text[s:e] for s, e in offsets]
        joined = " ".join(parts)
        given = _text_field(anode.get("text"), f"annotation {aid} text", where, anode)
        record: dict[str, Any] = {}
        if given is not None and given != joined:
            if squash_space(given) != squash_space(joined):
                msg = f"annotation {aid} locations {offsets} select {parts!r}, but the annotation text is {given!r}"
                if mismatch == "error":
                    raise where.mismatch(msg, anode)
                warnings.warn(f"{where.path}, record {where.record}: {msg}; skipped", stacklevel=3)
                bioc.setdefault("skipped", []).append({"id": aid, "text": given, "offsets": offsets})
                continue
            record["text"] = given
        if infons:
            record["infons"] = infons
        if norm_raw and norm_raw != render_norm_infons(normalized):
            record["norm"] = norm_raw
        if record:
            bioc.setdefault("annotations", {})[aid] = record
        if infons.get("CompositeRole") == INDIVIDUAL_MENTION:
            ineligible.add(aid)
        entities.append(Entity(aid, etype, parts, offsets, normalized, score, annotator))
    return entities, ineligible


def _forced_norms(raw: str, where: _Where, node: dict[str, Any]) -> list[Normalization]:
    try:
        return [Normalization(str(db), str(i)) for db, i in json.loads(raw)]
    except (ValueError, TypeError) as exc:
        raise where.malformed(f"infon {NORM_INFON} must be a JSON list of [db_name, db_id] ({exc})", node) from None


def _relations(
    rel_nodes: list[dict[str, Any]],
    doc_id: str,
    entities: list[Entity],
    ineligible: set[str],
    bioc: dict[str, Any],
    where: _Where,
) -> list[Relation]:
    ids = {e.id for e in entities}
    types = {e.type for e in entities if e.type}
    skipped = {s["id"] for s in bioc.get("skipped", [])}
    relations: list[Relation] = []
    seen: set[str] = set()
    for n, rnode in enumerate(rel_nodes):
        rid = str(rnode.get("id") or f"{doc_id}-R{n}")
        if rid in seen:
            raise where.malformed(f"relation id {rid!r} occurs twice in the document", rnode)
        seen.add(rid)
        infons = _infons(rnode, where)
        rtype = infons.pop("type", None)
        if rtype is None:
            rtype = infons.pop("relation", "")
        annotator, score = _pop_scored(infons)
        forced = infons.pop(NORM_INFON, None)
        normalized = _forced_norms(forced, where, rnode) if forced is not None else []
        record: dict[str, Any] = {}
        nodes = _list(rnode, "nodes", where)
        if nodes:
            pairs = [[str(nd.get("refid", "")), str(nd.get("role", ""))] for nd in nodes]
            for refid, _ in pairs:
                if refid not in ids:
                    why = " (its annotation was skipped)" if refid in skipped else ""
                    raise where.malformed(
                        f"relation {rid} node refid {refid!r} names no annotation of the document{why}", rnode
                    )
            args = [p[0] for p in pairs[:2]] + [""] * (2 - min(len(pairs), 2))
            if pairs != default_nodes(args[0], args[1]):
                record["nodes"] = pairs
        else:
            keys = [k for k in infons if k in types]
            if len(keys) != 2:
                raise where.malformed(
                    f"relation {rid} has no nodes and {len(keys)} infons keyed by an entity type ({keys}); "
                    "a concept relation needs two",
                    rnode,
                )
            args, raws = [], {}
            for key in keys:
                raw = infons.pop(key)
                norms = parse_ids(raw)
                if len(norms) != 1:
                    raise where.malformed(f"relation {rid}: infon {key} must hold one concept id, got {raw!r}", rnode)
                anchor = first_mention(entities, norms[0], key, lambda e: e.id not in ineligible)
                if anchor is None:
                    raise where.malformed(
                        f"relation {rid}: concept {raw!r} ({key}) has no mention in the document", rnode
                    )
                args.append(anchor.id)
                normalized.append(norms[0])
                if render_id(norms[0]) != raw:
                    raws[key] = raw
            if raws:
                record["concepts"] = raws
        if infons:
            record["infons"] = infons
        if record:
            bioc.setdefault("relations", {})[rid] = record
        relations.append(Relation(rid, rtype, args[0], args[1], normalized, score, annotator))
    return relations


def default_nodes(arg1: str, arg2: str) -> list[list[str]]:
    return [[a, role] for a, role in ((arg1, "arg1"), (arg2, "arg2")) if a]


__all__ = [
    "NORMALIZATION_KEYS",
    "collection_info",
    "default_nodes",
    "document_from_bioc",
    "is_norm_key",
    "parse_norm_infons",
    "render_norm_infons",
    "squash_space",
]
