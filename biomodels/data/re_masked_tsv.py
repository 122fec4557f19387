"""Sentence-level masked RE files (BLUE and BioELECTRA TSV): arguments already masked in the text."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from biomodels.data.re_marking import MarkedExample
from corpora.errors import MalformedInputError
from corpora.formats.textio import iter_lines

log = logging.getLogger(__name__)

_BLUE_MASK = re.compile(r"@[A-Z]+(?:-[A-Z]+)*\$")
ARG1_MASKS = ("@CHEMICAL$", "BC6ENTC")
ARG2_MASKS = ("@GENE$", "@DISEASE$", "BC6ENTG")


def read_masked_re_tsv(path: str | Path) -> list[MarkedExample]:
    """Read a sentence-level masked RE file as MarkedExamples (labels kept as written).

    Two layouts, told apart by the first line: BLUE (`id<TAB>sentence<TAB>label`, no header; masks
    `@CHEMICAL$`/`@GENE$`, `@CHEM-GENE$` for overlapping arguments) and BioELECTRA (header
    `sentence<TAB>label`; masks `BC6ENTC`/`BC6ENTG`, others `BC6OTHER`; ids become `<file stem>:<line>`).
    A row with the wrong number of columns, an empty id, sentence or label, or no argument mask at all
    raises MalformedInputError naming the file and line. A repeated id is kept (BLUE's dev file has 4:
    pairs gold for two CPR groups, one row per group). A row lacking one of the two masks (24 rows
    of BioELECTRA's train.tsv) is kept with that argument's span None.
    """
    p = Path(path)
    out: list[MarkedExample] = []
    layout: str | None = None
    seen_ids: set[str] = set()
    missing = repeats = 0
    for lineno, raw in iter_lines(p):
        if not raw.strip():
            continue
        cols = raw.split("\t")
        if layout is None:
            if [c.strip().lower() for c in cols] == ["sentence", "label"]:
                layout = "bioelectra"
                continue
            if len(cols) == 3:
                layout = "blue"
            elif len(cols) == 2:
                layout = "bioelectra"
            else:
                raise MalformedInputError(
                    p,
                    f"expected 'id<TAB>sentence<TAB>label' or 'sentence<TAB>label', found {len(cols)} columns",
                    line=lineno,
                )
        expected = 3 if layout == "blue" else 2
        if len(cols) != expected:
            raise MalformedInputError(p, f"expected {expected} tab-separated columns, found {len(cols)}", line=lineno)
        if layout == "blue":
            rid, sentence, label = cols
            rid = rid.strip()
            if not rid:
                raise MalformedInputError(p, "empty id", line=lineno)
            repeats += rid in seen_ids
            seen_ids.add(rid)
        else:
            sentence, label = cols
            rid = f"{p.stem}:{lineno}"
        label = label.strip()
        if not sentence.strip() or not label:
            raise MalformedInputError(
                p,
                f"empty {'sentence' if not sentence.strip() else 'label'}",
                line=lineno,
                record=rid if layout == "blue" else None,
            )
        spans = _mask_spans(sentence, layout)
        if spans is None:
            raise MalformedInputError(
                p,
                "no argument mask (@CHEMICAL$/@GENE$ or BC6ENTC/BC6ENTG) in the sentence",
                line=lineno,
                record=rid if layout == "blue" else None,
            )
        a1, a2 = spans
        missing += (a1 is None) + (a2 is None)
        out.append(MarkedExample(rid, sentence, a1, a2, label, line=lineno))
    if layout is None:
        raise MalformedInputError(p, "no rows")
    if missing:
        log.warning("%s: %d argument masks missing (rows kept with one argument)", p, missing)
    if repeats:
        log.info("%s: %d rows repeat an earlier id (a pair with two relation types; all kept)", p, repeats)
    return out


def _mask_spans(sentence: str, layout: str) -> tuple[tuple[int, int] | None, tuple[int, int] | None] | None:
    if layout == "blue":
        found = [(m.group(), m.span()) for m in _BLUE_MASK.finditer(sentence)]
    else:
        found = [(m.group(), m.span()) for m in re.finditer(r"BC6ENT[CG]", sentence)]
    if not found:
        return None
    if len(found) == 1 and "-" in found[0][0]:
        return found[0][1], found[0][1]  # overlapping arguments share one mask
    a1 = next((span for mask, span in found if mask in ARG1_MASKS), None)
    a2 = next((span for mask, span in found if mask in ARG2_MASKS), None)
    if a1 is None and a2 is None and len(found) >= 2:
        a1, a2 = found[0][1], found[1][1]  # other BLUE tasks (@DRUG$ twice): text order
    return a1, a2
