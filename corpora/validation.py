"""Checks every reader and the store apply: offsets select exactly the text they claim.

Tested in `tests/corpora/formats/test_pubtator.py`.
"""

from __future__ import annotations

from pathlib import Path

from corpora.errors import MalformedInputError, OffsetMismatchError
from corpora.schema import Document


def check_entity_offsets(doc: Document, path: str | Path, line: int | None = None) -> None:
    """Raise OffsetMismatchError unless `text[start:end] == entity text` for every span of every entity."""
    text = doc.text
    for ent in doc.entities:
        if len(ent.text) != len(ent.offsets):
            raise OffsetMismatchError(
                path,
                f"entity {ent.id} has {len(ent.offsets)} offset pairs but {len(ent.text)} texts",
                line=line,
                record=doc.document_id,
            )
        for (start, end), expected in zip(ent.offsets, ent.text):
            if not (0 <= start <= end <= len(text)):
                raise OffsetMismatchError(
                    path,
                    f"entity {ent.id} offsets {start}-{end} fall outside the document text (length {len(text)})",
                    line=line,
                    record=doc.document_id,
                )
            found = text[start:end]
            if found != expected:
                raise OffsetMismatchError(
                    path,
                    f"entity {ent.id} offsets {start}-{end} select {found!r}, but the entity text is {expected!r}",
                    line=line,
                    record=doc.document_id,
                )


def check_relation_arguments(doc: Document, path: str | Path, line: int | None = None) -> None:
    """Relations must point at entities of the same document (BigBio KB rule).

    An empty `arg2_id` is allowed: BioC relations may have a single node.
    """
    ids = {e.id for e in doc.entities}
    for rel in doc.relations:
        for arg in (rel.arg1_id, rel.arg2_id):
            if arg not in ids and not (arg == "" and arg is rel.arg2_id):
                raise MalformedInputError(
                    path, f"relation {rel.id} points at unknown entity {arg!r}", line=line, record=doc.document_id
                )
