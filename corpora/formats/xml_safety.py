"""What every XML reader passes to lxml, and the check for entity references left in a record.

The readers never load a DTD, fetch anything or expand entities (no XXE, no billion laughs).
libxml2's own size limits are lifted (`huge_tree`) because they report a long abstract as
"malformed XML" without saying which limit was hit; the readers bound sizes themselves with
`corpora.formats.limits.LimitedStream`, before libxml2 sees the bytes.

An entity declared in the file's internal DTD subset (`<!ENTITY co "X">`) and used in text is not
expanded, so lxml keeps it as an entity node: `<text>Aspirin &co; helps.</text>` has `.text`
"Aspirin " and the rest hangs off the entity node. Rather than store a cut or a literal `&co;`,
`refuse_entity_references` turns any such node into a MalformedInputError naming it (the five XML
entities and character references are ordinary text and never produce one).

Tested in `tests/corpora/formats/test_hostile_xml.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lxml import etree

from corpora.errors import MalformedInputError

PARSE_OPTIONS: dict[str, Any] = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "huge_tree": True,
    "remove_comments": True,
    "remove_pis": True,
}


def refuse_entity_references(path: str | Path, elem: Any, record: str | None = None) -> None:
    """Raise MalformedInputError if `elem` holds an unexpanded entity reference (see the module doc)."""
    for node in elem.iter(etree.Entity):
        raise MalformedInputError(
            path,
            f"uses the entity {node.text} declared in the file's DTD; entities other than the five XML "
            "ones (&amp; &lt; &gt; &quot; &apos;) and character references (&#...;) are not expanded: "
            "replace it with the text it stands for",
            line=node.sourceline,
            record=record,
        )


__all__ = ["PARSE_OPTIONS", "refuse_entity_references"]
