"""The one document schema (BigBio KB style) that flows through every step.

Readers produce `Document`s, preprocessing adds `sentences`, `tokens` and `abbreviations`, models
add scored `entities` and `relations`, and the store writes them as Parquet rows of the same shape
(`corpora.dataset.arrow_schema`). Offsets are character offsets into `Document.text`, the text formed by
placing each passage at its offsets (gaps between passages are filled with spaces, which is how
PubTator, BioC and ChemProt define their document text).

Tested in `tests/corpora/dataset/test_store.py`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

Offsets = list[list[int]]

SCHEMA_VERSION = "1"


@dataclass
class Source:
    """Where a document came from: the input file, its content hash and the reader used."""

    path: str = ""
    sha256: str = ""
    format: str = ""


@dataclass
class Passage:
    id: str
    type: str
    text: str
    offsets: Offsets


@dataclass
class Normalization:
    db_name: str
    db_id: str


@dataclass
class Entity:
    """A mention; several offset pairs make a discontinuous span, `text` has one string per pair."""

    id: str
    type: str
    text: list[str]
    offsets: Offsets
    normalized: list[Normalization] = field(default_factory=list)
    score: float | None = None
    annotator: str | None = None


@dataclass
class Relation:
    id: str
    type: str
    arg1_id: str
    arg2_id: str
    normalized: list[Normalization] = field(default_factory=list)
    score: float | None = None
    annotator: str | None = None


@dataclass
class Span:
    """A sentence or token: half-open character offsets into the document text."""

    start: int
    end: int


@dataclass
class Abbreviation:
    id: str
    short_form: str
    long_form: str
    short_offsets: list[int]
    long_offsets: list[int]


@dataclass
class MeshTerm:
    ui: str
    name: str
    major_topic: bool = False
    qualifiers: list[str] = field(default_factory=list)


@dataclass
class Metadata:
    """Bibliographic metadata where the source has it; `extra` holds format-specific JSON."""

    journal: str | None = None
    year: int | None = None
    doi: str | None = None
    pmcid: str | None = None
    language: str | None = None
    publication_types: list[str] = field(default_factory=list)
    mesh_terms: list[MeshTerm] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    extra: str | None = None


@dataclass
class Document:
    id: str
    document_id: str
    source: Source = field(default_factory=Source)
    passages: list[Passage] = field(default_factory=list)
    entities: list[Entity] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)
    sentences: list[Span] = field(default_factory=list)
    tokens: list[Span] = field(default_factory=list)
    abbreviations: list[Abbreviation] = field(default_factory=list)
    metadata: Metadata = field(default_factory=Metadata)

    @property
    def text(self) -> str:
        """The document text every offset points into (passages at their offsets, gaps as spaces)."""
        return document_text(self.passages)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Document:
        """Build a Document from a plain dict (a Parquet row, a JSON record); missing fields default."""
        md = dict(row.get("metadata") or {})
        md["mesh_terms"] = [MeshTerm(**m) for m in md.get("mesh_terms") or []]
        for key in ("publication_types", "keywords"):
            md[key] = list(md.get(key) or [])
        return cls(
            id=row["id"],
            document_id=row["document_id"],
            source=Source(**(row.get("source") or {})),
            passages=[
                Passage(p["id"], p["type"], p["text"], _offsets(p["offsets"])) for p in row.get("passages") or []
            ],
            entities=[
                Entity(
                    id=e["id"],
                    type=e["type"],
                    text=list(e["text"]),
                    offsets=_offsets(e["offsets"]),
                    normalized=[Normalization(**n) for n in e.get("normalized") or []],
                    score=e.get("score"),
                    annotator=e.get("annotator"),
                )
                for e in row.get("entities") or []
            ],
            relations=[
                Relation(
                    id=r["id"],
                    type=r["type"],
                    arg1_id=r["arg1_id"],
                    arg2_id=r["arg2_id"],
                    normalized=[Normalization(**n) for n in r.get("normalized") or []],
                    score=r.get("score"),
                    annotator=r.get("annotator"),
                )
                for r in row.get("relations") or []
            ],
            sentences=[Span(s["start"], s["end"]) for s in row.get("sentences") or []],
            tokens=[Span(t["start"], t["end"]) for t in row.get("tokens") or []],
            abbreviations=[
                Abbreviation(
                    id=a["id"],
                    short_form=a["short_form"],
                    long_form=a["long_form"],
                    short_offsets=list(a["short_offsets"]),
                    long_offsets=list(a["long_offsets"]),
                )
                for a in row.get("abbreviations") or []
            ],
            metadata=Metadata(**md),
        )


@dataclass(frozen=True)
class Deletion:
    """A `DeleteCitation` entry of a MEDLINE update file: remove this PMID from the dataset."""

    document_id: str


def _offsets(value: Any) -> Offsets:
    return [[int(a), int(b)] for a, b in value]


def document_text(passages: list[Passage]) -> str:
    """Join passages at their offsets; any gap between them is filled with spaces.

    Passages with several offset pairs are not used by any reader; the first pair positions them.
    """
    if not passages:
        return ""
    ordered = sorted(passages, key=lambda p: p.offsets[0][0])
    parts: list[str] = []
    cursor = 0
    for p in ordered:
        start = p.offsets[0][0]
        if start > cursor:
            parts.append(" " * (start - cursor))
        elif start < cursor:
            raise ValueError(f"passage {p.id} starts at {start}, inside the previous passage (ends {cursor})")
        parts.append(p.text)
        cursor = start + len(p.text)
    return "".join(parts)


def passages_from_texts(items: list[tuple[str, str]], separator: str = " ", id_prefix: str = "") -> list[Passage]:
    """Lay (type, text) pairs end to end with `separator` between them, as PubTator does."""
    passages: list[Passage] = []
    cursor = 0
    for i, (ptype, text) in enumerate(items):
        if i:
            cursor += len(separator)
        passages.append(Passage(f"{id_prefix}{i}", ptype, text, [[cursor, cursor + len(text)]]))
        cursor += len(text)
    return passages
