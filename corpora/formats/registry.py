"""The format registry: names, readers, detection from content, and input expansion.

`--format auto` (the default) looks at a file's first bytes, never its name alone, so a PubTator
file called `.txt` or a gzip without `.gz` is still read right. Companion files (ChemProt's
entities/relations/gold standard beside its abstracts, brat's `.txt` beside its `.ann`) are read
by the reader of the main file and are not inputs of their own.
"""

from __future__ import annotations

import glob
import importlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from corpora.errors import EmptyInputError, InputError, UnknownFormatError
from corpora.formats.textio import head_bytes
from corpora.schema import Deletion, Document

Record = Document | Deletion
Reader = Callable[[Path], Iterator[Record]]


@dataclass(frozen=True)
class FormatSpec:
    name: str
    reader: str  # "module:function", imported on first use
    description: str


FORMATS: dict[str, FormatSpec] = {
    spec.name: spec
    for spec in [
        FormatSpec(
            "pubmed-xml",
            "corpora.formats.pubmed_xml:read_pubmed_xml",
            "MEDLINE/PubMed XML (PubmedArticleSet, MedlineCitationSet), plain or gzip",
        ),
        FormatSpec(
            "pubtator",
            "corpora.formats.pubtator:read_pubtator",
            "PubTator title/abstract lines, mentions and relations",
        ),
        FormatSpec("bioc-xml", "corpora.formats.bioc_xml:read_bioc_xml", "BioC XML collection"),
        FormatSpec("bioc-json", "corpora.formats.bioc_json:read_bioc_json", "BioC JSON collection"),
        FormatSpec(
            "conll", "corpora.formats.conll:read_conll", "CoNLL / BIO token-tag columns, -DOCSTART- document boundaries"
        ),
        FormatSpec(
            "chemprot",
            "corpora.formats.chemprot:read_chemprot",
            "ChemProt original TSV set (*_abstracts.tsv with its siblings)",
        ),
        FormatSpec("brat", "corpora.formats.brat:read_brat", "brat standoff (.ann with its .txt)"),
        FormatSpec(
            "ddi-xml",
            "corpora.formats.ddi:read_ddi",
            "DDI corpus 2013 XML (one <document> of <sentence>s with charOffset entities and pairs)",
        ),
    ]
}

CHEMPROT_COMPANIONS = ("_entities.tsv", "_relations.tsv", "_gold_standard.tsv")
_PUBTATOR_LINE = re.compile(rb"^[^\t|\s]+\|[ta]\|", re.M)
_CONLL_LINE = re.compile(rb"^\S+(\t|\s)+\S+\s*$")
# the first element, after an XML declaration, doctype, comments or processing instructions
_XML_ROOT = re.compile(rb"^(?:\s|<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>]*>)*<([A-Za-z_][\w.:-]*)", re.S)
_DDI_SENTENCE = re.compile(rb"<sentence\s[^>]*\btext=")


def get_reader(fmt: str) -> Reader:
    if fmt not in FORMATS:
        raise UnknownFormatError(
            "<format option>", f"unknown format {fmt!r}; known formats: {', '.join(sorted(FORMATS))}, auto"
        )
    module, func = FORMATS[fmt].reader.split(":")
    return getattr(importlib.import_module(module), func)


def is_companion(path: Path) -> bool:
    """True for files that belong to another input (ChemProt siblings, brat .txt with an .ann)."""
    name = path.name
    if any(name.endswith(s) for s in CHEMPROT_COMPANIONS):
        return _chemprot_main(path).exists()
    if path.suffix == ".txt" and path.with_suffix(".ann").exists():
        return True
    return False


def _chemprot_main(path: Path) -> Path:
    name = path.name
    for suffix in CHEMPROT_COMPANIONS:
        if name.endswith(suffix):
            return path.with_name(name[: -len(suffix)] + "_abstracts.tsv")
    return path


def detect_format(path: str | Path) -> str:
    """Name the format of `path` from its content (and, for brat and ChemProt, its siblings)."""
    p = Path(path)
    if p.suffix == ".ann":
        return "brat"
    if p.name.endswith("_abstracts.tsv") and p.with_name(p.name[: -len("_abstracts.tsv")] + "_entities.tsv").exists():
        return "chemprot"
    head = head_bytes(p, 8192)
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not stripped:
        raise EmptyInputError(p, "file is empty (nothing to detect a format from)")
    if stripped.startswith(b"<"):
        if re.search(
            rb"<(PubmedArticleSet|MedlineCitationSet|PubmedArticle|MedlineCitation|PubmedBookArticle)[\s>]", head
        ):
            return "pubmed-xml"
        if re.search(rb"<collection[\s>]", head):
            return "bioc-xml"
        if _is_ddi(stripped):
            return "ddi-xml"
        raise UnknownFormatError(
            p,
            "XML, but neither PubMed (PubmedArticleSet/MedlineCitationSet), BioC (collection) "
            "nor DDI (document of sentences)",
        )
    if stripped.startswith(b"{") or stripped.startswith(b"["):
        if re.search(rb'"documents"\s*:', head) or re.search(rb'"passages"\s*:', head):
            return "bioc-json"
        raise UnknownFormatError(p, 'JSON, but not a BioC collection (no "documents" key)')
    if _PUBTATOR_LINE.search(head):
        return "pubtator"
    lines = [ln for ln in head.splitlines()[:-1] if ln.strip()]
    if lines and (lines[0].startswith(b"-DOCSTART-") or all(_CONLL_LINE.match(ln) for ln in lines[:50])):
        return "conll"
    raise UnknownFormatError(p, "cannot tell the format from the content; pass --format " + "|".join(sorted(FORMATS)))


def _is_ddi(head: bytes) -> bool:
    """DDI XML: the root is <document> and it holds <sentence text=...> elements (entities with
    charOffset inside them; a document without any drug has none, so they are not required)."""
    m = _XML_ROOT.match(head)
    return bool(
        m and m.group(1) == b"document" and (_DDI_SENTENCE.search(head) or re.search(rb"<document\b[^>]*/>", head))
    )


def expand_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files named by each input (a file, a folder walked recursively, or a glob), sorted, no companions.

    An input that matches nothing is an error naming it, not a silent no-op.
    """
    found: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_file():
            found.append(p)
        elif p.is_dir():
            found.extend(sorted(f for f in p.rglob("*") if f.is_file() and not _ignored(f) and not is_companion(f)))
        else:
            matches = sorted(Path(m) for m in glob.glob(str(item), recursive=True))
            files = [m for m in matches if m.is_file() and not _ignored(m) and not is_companion(m)]
            if not files:
                raise InputError(item, "no such file, folder or matching glob")
            found.extend(files)
    seen: set[Path] = set()
    unique = []
    for f in found:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


_IGNORED_SUFFIXES = {".md", ".pdf", ".rst", ".dtd", ".xsd", ".py"}


def _ignored(path: Path) -> bool:
    """Documentation and hidden files inside input folders (SOURCE.md, LICENSE, README.txt, Readme.pdf)."""
    upper = path.name.upper()
    return (
        path.name.startswith(".")
        or path.suffix.lower() in _IGNORED_SUFFIXES
        or upper.startswith(("LICENSE", "README", "SOURCE"))
    )


def companion_files(path: str | Path, fmt: str) -> list[Path]:
    """Existing files, besides `path` itself, that the reader of `fmt` reads for this input."""
    p = Path(path)
    if fmt == "chemprot":
        return [c for c in (_chemprot_sibling(p, s) for s in CHEMPROT_COMPANIONS) if c.exists()]
    if fmt == "brat":
        txt = p.with_suffix(".txt")
        return [txt] if txt.exists() else []
    return []


def _chemprot_sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name[: -len("_abstracts.tsv")] + suffix)


def read_documents(path: str | Path, fmt: str = "auto") -> Iterator[Record]:
    """Stream the records of one input file in the given (or detected) format."""
    p = Path(path)
    name = detect_format(p) if fmt == "auto" else fmt
    return get_reader(name)(p)


def describe_formats() -> str:
    return "\n".join(f"  {spec.name:<10} {spec.description}" for spec in FORMATS.values())


__all__ = ["FORMATS", "detect_format", "expand_inputs", "get_reader", "read_documents", "describe_formats"]
