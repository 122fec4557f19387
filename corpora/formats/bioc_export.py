"""Document -> BioC (JSON-shaped dict), the inverse of `corpora.formats.bioc_common.document_from_bioc`.

Everything the reader maps (see `corpora.formats.bioc_common`) is put back where it came from, so
read -> write -> read gives equal Documents. What BioC cannot hold natively (Document.id when it differs, tokens,
abbreviations, non-BioC metadata and extra, sentences that are not written as sentence elements,
a document's own collection info when it differs from the written collection) goes into one
document infon `biomed:schema` (JSON); normalizations that do not render back natively go into an
annotation/relation infon `biomed:normalized`. Entities are placed in the passage (or sentence)
that contains them when that keeps their order, else all at document level; relations are
written at document level.

Tested in `tests/corpora/formats/test_bioc_xml.py`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, fields
from typing import Any

from corpora.formats.bioc_common import (
    INDIVIDUAL_MENTION,
    NORM_INFON,
    SCHEMA_INFON,
    collection_info,
    default_nodes,
    is_norm_key,
    parse_norm_infons,
    render_norm_infons,
    squash_space,
)
from corpora.formats.concept_ids import first_mention, load_extra, parse_ids, render_id
from corpora.schema import Document, Entity, Metadata, Relation, Span


def header_collection(docs_first: Document | None, source: str = "", date: str = "", key: str = "") -> dict[str, Any]:
    """The collection fields to write: the first document's (read from BioC) or the given ones."""
    if docs_first is not None:
        found = load_extra(docs_first.metadata.extra).get("bioc", {}).get("collection")
        if found is not None:
            return found
    return collection_info(source, date, key, {})


def document_to_bioc(doc: Document, collection: dict[str, Any]) -> dict[str, Any]:
    """The BioC (JSON-shaped) dict for a Document, written so that reading it back gives `doc`."""
    extra = load_extra(doc.metadata.extra)
    bioc = extra.pop("bioc", {}) if isinstance(extra.get("bioc"), dict) else {}
    bioc = {k: (dict(v) if isinstance(v, dict) else v) for k, v in bioc.items()}
    schema: dict[str, Any] = {}
    if doc.id != doc.document_id:
        schema["id"] = doc.id
    own = bioc.pop("collection", {})
    if own != collection:
        schema["collection"] = own
    infons = dict(bioc.pop("infons", {}))

    text = doc.text
    sentence_form, native_sents = _sentence_passages(doc, text)
    passages_out: list[dict[str, Any]] = []
    for i, p in enumerate(doc.passages):
        pinfons = {"type": p.type} if p.type else {}
        pinfons.update(bioc.get("passages", {}).pop(p.id, {}))
        out: dict[str, Any] = {
            "offset": p.offsets[0][0],
            "infons": pinfons,
            "text": p.text,
            "sentences": [],
            "annotations": [],
            "relations": [],
        }
        if i in sentence_form:
            out["text"] = ""
            for s in sentence_form[i]:
                sinfons = bioc.get("sentences", {}).pop(f"{s.start}-{s.end}", {})
                out["sentences"].append(
                    {
                        "offset": s.start,
                        "infons": sinfons,
                        "text": text[s.start : s.end],
                        "annotations": [],
                        "relations": [],
                    }
                )
        passages_out.append(out)

    leftover_sents = [s for s in doc.sentences if (s.start, s.end) not in native_sents]
    if leftover_sents:
        schema["sentences"] = [[s.start, s.end] for s in leftover_sents]
    if doc.tokens:
        schema["tokens"] = [[t.start, t.end] for t in doc.tokens]
    if doc.abbreviations:
        schema["abbreviations"] = [asdict(a) for a in doc.abbreviations]
    md = {f.name: getattr(doc.metadata, f.name) for f in fields(Metadata) if f.name != "extra"}
    md = {k: v for k, v in md.items() if v != getattr(Metadata(), k)}
    if md:
        schema["metadata"] = {k: ([asdict(m) for m in v] if k == "mesh_terms" else v) for k, v in md.items()}

    ineligible = {
        e.id
        for e in doc.entities
        if bioc.get("annotations", {}).get(e.id, {}).get("infons", {}).get("CompositeRole") == INDIVIDUAL_MENTION
    }
    ann_out = [_annotation_out(e, bioc) for e in doc.entities]
    doc_annotations = _place_annotations(doc, ann_out, passages_out, sentence_form)
    relations_out = [_relation_out(r, doc, ineligible, bioc) for r in doc.relations]

    remainder_bioc = {k: v for k, v in bioc.items() if v}
    if remainder_bioc:
        extra["bioc"] = remainder_bioc
    if extra:
        schema["extra"] = extra
    if schema:
        infons[SCHEMA_INFON] = json.dumps(schema, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return {
        "id": doc.document_id,
        "infons": infons,
        "passages": passages_out,
        "annotations": doc_annotations,
        "relations": relations_out,
    }


def _sentence_passages(doc: Document, text: str) -> tuple[dict[int, list[Span]], set[tuple[int, int]]]:
    """Passages that can be written as sentence elements (their sentences rebuild their text)."""
    spans = [(s.start, s.end) for s in doc.sentences]
    if not spans or spans != sorted(set(spans)):
        return {}, set()
    form: dict[int, list[Span]] = {}
    native: set[tuple[int, int]] = set()
    for i, p in enumerate(doc.passages):
        start = p.offsets[0][0]
        end = start + len(p.text)
        inside = [s for s in doc.sentences if start <= s.start and s.end <= end]
        if not inside or not p.text:
            continue
        rebuilt, cursor = [], start
        for s in inside:
            if s.start < cursor:
                break
            rebuilt.append(" " * (s.start - cursor) + text[s.start : s.end])
            cursor = s.end
        else:
            if "".join(rebuilt) == p.text:
                form[i] = inside
                native.update((s.start, s.end) for s in inside)
    return form, native


def _annotation_out(ent: Entity, bioc: dict[str, Any]) -> dict[str, Any]:
    record = bioc.get("annotations", {}).get(ent.id, {})
    infons: dict[str, str] = {"type": ent.type} if ent.type else {}
    raw = record.get("norm")
    if raw is not None and parse_norm_infons(raw) == ent.normalized:
        infons.update(raw)
        record.pop("norm")
    else:
        rendered = render_norm_infons(ent.normalized)
        if all(is_norm_key(k) for k in rendered) and parse_norm_infons(rendered) == ent.normalized:
            infons.update(rendered)
        else:
            infons[NORM_INFON] = json.dumps([[n.db_name, n.db_id] for n in ent.normalized], ensure_ascii=False)
    for k, v in record.pop("infons", {}).items():
        infons.setdefault(k, v)
    _put_scored(infons, ent.annotator, ent.score)
    joined = " ".join(ent.text)
    given = record.get("text")
    if given is not None and squash_space(given) == squash_space(joined):
        record.pop("text")
        joined = given
    if not record:
        bioc.get("annotations", {}).pop(ent.id, None)
    locations = [{"offset": s, "length": e - s} for s, e in ent.offsets]
    return {"id": ent.id, "infons": infons, "text": joined, "locations": locations}


def _put_scored(infons: dict[str, str], annotator: str | None, score: float | None) -> None:
    if annotator is not None:
        infons["annotator"] = annotator
    if score is not None:
        infons["score"] = repr(float(score))


def _place_annotations(
    doc: Document,
    ann_out: list[dict[str, Any]],
    passages_out: list[dict[str, Any]],
    sentence_form: dict[int, list[Span]],
) -> list[dict[str, Any]]:
    """Put each annotation in the passage/sentence holding it if that keeps the entity order."""
    far = (len(doc.passages), 0)
    keys: list[tuple[int, int]] = []
    for ent in doc.entities:
        key = far
        lo, hi = min(s for s, _ in ent.offsets), max(e for _, e in ent.offsets)
        for i, p in enumerate(doc.passages):
            start = p.offsets[0][0]
            if start <= lo and hi <= start + len(p.text):
                if i in sentence_form:
                    for j, s in enumerate(sentence_form[i]):
                        if s.start <= lo and hi <= s.end:
                            key = (i, j)
                            break
                else:
                    key = (i, 0)
                break
        keys.append(key)
    if keys != sorted(keys):
        return ann_out
    doc_level = []
    for key, ann in zip(keys, ann_out):
        if key == far:
            doc_level.append(ann)
        elif key[0] in sentence_form:
            passages_out[key[0]]["sentences"][key[1]]["annotations"].append(ann)
        else:
            passages_out[key[0]]["annotations"].append(ann)
    return doc_level


def _relation_out(rel: Relation, doc: Document, ineligible: set[str], bioc: dict[str, Any]) -> dict[str, Any]:
    record = bioc.get("relations", {}).get(rel.id, {})
    other = dict(record.get("infons", {}))
    by_id = {e.id: e for e in doc.entities}
    out: dict[str, Any] = {"id": rel.id, "infons": {}, "nodes": []}
    concept = _concept_form(rel, doc, by_id, ineligible, other, record)
    if concept is not None:
        infons = {"relation": rel.type} if rel.type else {}
        infons.update(concept)
        record.pop("concepts", None)
    else:
        infons = {"type": rel.type} if rel.type or "relation" in other else {}
        if rel.normalized:
            infons[NORM_INFON] = json.dumps([[n.db_name, n.db_id] for n in rel.normalized], ensure_ascii=False)
        nodes = record.get("nodes")
        if nodes is None or [n[0] for n in nodes[:2]] + [""] * (2 - min(len(nodes), 2)) != [rel.arg1_id, rel.arg2_id]:
            nodes = default_nodes(rel.arg1_id, rel.arg2_id)
        else:
            record.pop("nodes")
        out["nodes"] = [{"refid": r, "role": role} for r, role in nodes]
    for k, v in other.items():
        infons.setdefault(k, v)
    record.pop("infons", None)
    _put_scored(infons, rel.annotator, rel.score)
    if not record:
        bioc.get("relations", {}).pop(rel.id, None)
    out["infons"] = infons
    return out


def _concept_form(
    rel: Relation,
    doc: Document,
    by_id: dict[str, Entity],
    ineligible: set[str],
    other: dict[str, str],
    record: dict[str, Any],
) -> dict[str, str] | None:
    """Infons for a node-less concept relation (BC5CDR CID), or None when it would not read back."""
    if "nodes" in record or len(rel.normalized) != 2:
        return None
    a1, a2 = by_id.get(rel.arg1_id), by_id.get(rel.arg2_id)
    if a1 is None or a2 is None or not a1.type or not a2.type or a1.type == a2.type:
        return None
    types = {e.type for e in doc.entities if e.type}
    if any(k in types or k in ("type", "relation", NORM_INFON, "annotator", "score") for k in other):
        return None
    raws = record.get("concepts", {})
    infons: dict[str, str] = {}
    for ent, norm in ((a1, rel.normalized[0]), (a2, rel.normalized[1])):
        anchor = first_mention(doc.entities, norm, ent.type, lambda e: e.id not in ineligible)
        if anchor is None or anchor.id != ent.id:
            return None
        raw = raws.get(ent.type)
        infons[ent.type] = raw if raw is not None and parse_ids(raw) == [norm] else render_id(norm)
    return infons


def iter_first(docs: Iterable[Document]) -> tuple[Document | None, Iterable[Document]]:
    """Peek at the first document (for the collection header) without losing it."""
    it = iter(docs)
    first = next(it, None)
    if first is None:
        return None, []

    def chained() -> Iterable[Document]:
        yield first
        yield from it

    return first, chained()
