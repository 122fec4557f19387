"""Concept identifiers of PubTator and BioC annotations, and the rule that anchors concept relations.

Shared by `corpora.formats.pubtator` and `corpora.formats.bioc_common` so that the PubTator and the BioC reading of
the same BC5CDR document give the same normalizations and the same relations.

Identifier strings
    An id column (PubTator) or a normalization infon (BioC) may hold several ids joined by `|`, `+`
    or `;` (`D003110|D009369`, `D040181+D009136`): each becomes one `Normalization`. The string is
    split only when every piece looks like an identifier, so tmVar's `c|SUB|G|Ex2+860|C` stays one
    id. `-1` means "no id". MeSH descriptors and supplementary concepts (`D012878`, `C009166`) get
    db_name `MESH`; `PREFIX:rest` (`OMIM:217000`, `MESH:D000082`) gets db_name `PREFIX`; anything
    else keeps its raw string with the db_name the caller gives (`unknown` for PubTator).

Concept relations (BC5CDR `CID`)
    A CID relation links a chemical concept to a disease concept, not two mentions. The BigBio KB
    schema wants entity ids, so each concept is anchored on its *first mention*: among the
    document's entities whose normalizations contain the concept id (skipping entities the caller
    marks ineligible, e.g. BioC `IndividualMention`s, which PubTator does not have), restricted to
    entities of the role's type (`Chemical`, `Disease`) when any of them has it, the one that
    starts first (ties: shorter first, then document order). The concept ids are also kept in the
    relation's `normalized`, in argument order.

Tested in `tests/corpora/formats/test_pubtator.py`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from corpora.schema import Entity, Normalization

UNKNOWN_DB = "unknown"
NO_ID = "-1"
MESH_ID = re.compile(r"^[CD]\d{6,9}$")
_PIECE = re.compile(r"^(?:-1|[A-Za-z][\w.]*:[^\s|+;:]+|[A-Za-z_]*\d[\w.\-]*)$")
_SPLIT = re.compile(r"[|+;]")

# Entity types of the two arguments of document-level concept relations, by relation type.
CONCEPT_ROLES: dict[str, tuple[str, str]] = {"CID": ("Chemical", "Disease")}


def parse_ids(raw: str, default_db: str = UNKNOWN_DB) -> list[Normalization]:
    """Normalizations of an id string; see the module docstring for the rules."""
    value = raw.strip()
    if not value:
        return []
    pieces = [p.strip() for p in _SPLIT.split(value)]
    if not all(_PIECE.match(p) for p in pieces):
        pieces = [value]
    found: list[Normalization] = []
    for piece in pieces:
        if piece == NO_ID:
            continue
        found.append(parse_id(piece, default_db))
    return found


def parse_id(piece: str, default_db: str = UNKNOWN_DB) -> Normalization:
    """One identifier: MeSH pattern, `PREFIX:rest`, or the raw string under `default_db`."""
    if MESH_ID.match(piece):
        return Normalization("MESH", piece)
    prefix, sep, rest = piece.partition(":")
    if sep and rest and re.match(r"^[A-Za-z][\w.]*$", prefix):
        return Normalization("MESH" if prefix.upper() == "MESH" else prefix, rest)
    return Normalization(default_db, piece)


def render_id(norm: Normalization, bare_db: str = UNKNOWN_DB) -> str:
    """The PubTator spelling of one id: bare MeSH ids and unknown ids, `DB:id` otherwise."""
    if norm.db_name == bare_db or (norm.db_name == "MESH" and MESH_ID.match(norm.db_id)):
        return norm.db_id
    return f"{norm.db_name}:{norm.db_id}"


def render_ids(norms: Sequence[Normalization]) -> str:
    """The PubTator id column for a list of normalizations (`-1` when there are none)."""
    if not norms:
        return NO_ID
    return "|".join(render_id(n) for n in norms)


def first_mention(
    entities: Sequence[Entity],
    concept: Normalization,
    role_type: str | None = None,
    eligible: Callable[[Entity], bool] | None = None,
) -> Entity | None:
    """The entity a concept-level relation argument is anchored on (module docstring), or None."""
    key = (concept.db_name, concept.db_id)
    candidates = [
        (i, e)
        for i, e in enumerate(entities)
        if e.offsets and (eligible is None or eligible(e)) and any((n.db_name, n.db_id) == key for n in e.normalized)
    ]
    if role_type is not None and any(e.type == role_type for _, e in candidates):
        candidates = [(i, e) for i, e in candidates if e.type == role_type]
    if not candidates:
        return None
    _, best = min(candidates, key=lambda ie: (ie[1].offsets[0][0], ie[1].offsets[-1][1], ie[0]))
    return best


def dump_extra(obj: dict[str, Any]) -> str | None:
    """The canonical JSON of `metadata.extra` (sorted keys, so re-reading gives equal strings)."""
    if not obj:
        return None
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def load_extra(extra: str | None) -> dict[str, Any]:
    """Parse `metadata.extra`; a value that is not a JSON object is kept under `_raw`."""
    if not extra:
        return {}
    try:
        obj = json.loads(extra)
    except ValueError:
        return {"_raw": extra}
    return obj if isinstance(obj, dict) else {"_raw": extra}
