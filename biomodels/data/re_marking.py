"""Relation-extraction argument marking: a candidate's sentence with its two arguments marked or masked.

Marking (`mark_candidate`), styles:
- `entity_markers`: "[E1] mention [/E1]" and "[E2] mention [/E2]";
- `typed_markers`: "[E1-CHEMICAL] mention [/E1-CHEMICAL]" (type aliases applied: GENE-Y -> GENE);
- `blue`: the mention replaced by "@CHEMICAL$" / "@GENE$" (BLUE benchmark), "@CHEM-GENE$" when the two
  arguments overlap;
- `bioelectra`: arg1 -> "BC6ENTC", arg2 -> "BC6ENTG", every other entity of the sentence -> "BC6OTHER"
  (the BioELECTRA / NeMo data), overlapping others merged into one mask.
The marked text keeps a per-character map to document offsets (-1 for inserted characters).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from biomodels.data.re_candidates import RelationCandidate
from corpora.errors import ConfigError

# every way of marking the arguments (`mark_candidate`), the one list the settings and models use
MARKER_STYLES = ("entity_markers", "typed_markers", "blue", "bioelectra")
DEFAULT_TYPE_ALIASES: Mapping[str, str] = {"GENE-Y": "GENE", "GENE-N": "GENE"}
_SHORT_TYPES: Mapping[str, str] = {"CHEMICAL": "CHEM"}  # BLUE's overlap mask is "@CHEM-GENE$"
BIOELECTRA_MASKS = ("BC6ENTC", "BC6ENTG", "BC6OTHER")


@dataclass
class MarkedExample:
    """A model input text with the two arguments located in it (a marked candidate, or a row of a
    masked sentence-level file)."""

    id: str
    text: str
    arg1_span: tuple[int, int] | None
    arg2_span: tuple[int, int] | None
    label: str | None
    char_map: list[int] | None = None  # per character of `text`: document offset, -1 if inserted
    arg1_inner: tuple[int, int] | None = None  # the mention text inside markers (marker styles)
    arg2_inner: tuple[int, int] | None = None
    line: int | None = None


def _alias(etype: str, aliases: Mapping[str, str]) -> str:
    return aliases.get(etype, etype).upper()


def mark_candidate(
    cand: RelationCandidate, style: str = "entity_markers", type_aliases: Mapping[str, str] = DEFAULT_TYPE_ALIASES
) -> MarkedExample:
    """The candidate's sentence with its arguments marked or masked (see the module docstring)."""
    if style not in MARKER_STYLES:
        raise ConfigError(f"unknown relation marker style {style!r}; known: {', '.join(MARKER_STYLES)}")
    base = cand.sentence_start
    a1 = (cand.arg1.start - base, cand.arg1.end - base)
    a2 = (cand.arg2.start - base, cand.arg2.end - base)
    if style in ("entity_markers", "typed_markers"):
        if style == "entity_markers":
            marks = (("[E1] ", " [/E1]"), ("[E2] ", " [/E2]"))
        else:
            t1, t2 = _alias(cand.arg1.type, type_aliases), _alias(cand.arg2.type, type_aliases)
            marks = ((f"[E1-{t1}] ", f" [/E1-{t1}]"), (f"[E2-{t2}] ", f" [/E2-{t2}]"))
        return _insert_markers(cand, a1, a2, marks)
    t1, t2 = _alias(cand.arg1.type, type_aliases), _alias(cand.arg2.type, type_aliases)
    if style == "blue":
        masks = (f"@{t1}$", f"@{t2}$", f"@{_SHORT_TYPES.get(t1, t1)}-{t2}$", None)
    else:
        masks = (*BIOELECTRA_MASKS[:2], BIOELECTRA_MASKS[0], BIOELECTRA_MASKS[2])
    return _replace_masks(cand, a1, a2, masks)


def _insert_markers(cand: RelationCandidate, a1: tuple[int, int], a2: tuple[int, int], marks) -> MarkedExample:
    # events at a position: closes before opens; inner closes first, outer opens first
    events = []
    for role, (s, e) in enumerate((a1, a2)):
        events.append((s, 1, -e, role, marks[role][0], "open"))
        events.append((e, 0, -s, role, marks[role][1], "close"))
    events.sort(key=lambda x: (x[0], x[1], x[2], x[3]))
    text = _Builder(cand.sentence, cand.sentence_start)
    opened: dict[int, tuple[int, int]] = {}
    spans: dict[int, tuple[int, int]] = {}
    inner: dict[int, tuple[int, int]] = {}
    cursor = 0
    for pos, _o, _k, role, marker, kind in events:
        text.copy(cursor, pos)
        cursor = pos
        if kind == "open":
            outer_start = len(text)
            text.insert(marker)
            opened[role] = (outer_start, len(text))
        else:
            inner[role] = (opened[role][1], len(text))
            text.insert(marker)
            spans[role] = (opened[role][0], len(text))
    text.copy(cursor, len(cand.sentence))
    return MarkedExample(cand.id, text.text(), spans[0], spans[1], cand.label, text.map, inner[0], inner[1])


def _replace_masks(cand: RelationCandidate, a1: tuple[int, int], a2: tuple[int, int], masks) -> MarkedExample:
    mask1, mask2, both, other = masks
    base = cand.sentence_start
    edits: list[tuple[int, int, str, int | None]] = []  # (start, end, replacement, role)
    if a1[0] < a2[1] and a2[0] < a1[1]:
        edits.append((min(a1[0], a2[0]), max(a1[1], a2[1]), both, -1))
    else:
        edits += [(a1[0], a1[1], mask1, 0), (a2[0], a2[1], mask2, 1)]
    if other is not None:
        taken = [(s, e) for s, e, _, _ in edits]
        spans = sorted((m.start - base, m.end - base) for m in cand.others)
        merged: list[list[int]] = []
        for s, e in spans:
            if any(s < te and ts < e for ts, te in taken):
                continue
            if merged and s < merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
            else:
                merged.append([s, e])
        edits += [(s, e, other, None) for s, e in merged if not any(s < te and ts < e for ts, te in taken)]
    edits.sort()
    b = _Builder(cand.sentence, base)
    cursor = 0
    spans_out: dict[int, tuple[int, int]] = {}
    for s, e, rep, role in edits:
        b.copy(cursor, s)
        start = len(b)
        b.insert(rep)
        if role == -1:
            spans_out[0] = spans_out[1] = (start, len(b))
        elif role is not None:
            spans_out[role] = (start, len(b))
        cursor = e
    b.copy(cursor, len(cand.sentence))
    return MarkedExample(cand.id, b.text(), spans_out[0], spans_out[1], cand.label, b.map)


class _Builder:
    """Accumulates output text and, per output character, the document offset it came from."""

    def __init__(self, source: str, base: int) -> None:
        self.source, self.base = source, base
        self.parts: list[str] = []
        self.map: list[int] = []

    def __len__(self) -> int:
        return len(self.map)

    def copy(self, start: int, end: int) -> None:
        if end > start:
            self.parts.append(self.source[start:end])
            self.map.extend(range(self.base + start, self.base + end))

    def insert(self, s: str) -> None:
        self.parts.append(s)
        self.map.extend([-1] * len(s))

    def text(self) -> str:
        return "".join(self.parts)


def marker_tokens(
    style: str, types: Iterable[str] = (), type_aliases: Mapping[str, str] = DEFAULT_TYPE_ALIASES
) -> list[str]:
    """Strings to add to a tokenizer as special tokens so each marker or mask stays one token."""
    if style == "entity_markers":
        return ["[E1]", "[/E1]", "[E2]", "[/E2]"]
    if style == "typed_markers":
        ts = sorted({_alias(t, type_aliases) for t in types})
        return [f"[{o}E{r}-{t}]" for r in (1, 2) for t in ts for o in ("", "/")]
    if style == "bioelectra":
        return list(BIOELECTRA_MASKS)
    if style == "blue":
        return []  # BLUE feeds "@CHEMICAL$" to the tokenizer as text
    raise ConfigError(f"unknown relation marker style {style!r}; known: {', '.join(MARKER_STYLES)}")
