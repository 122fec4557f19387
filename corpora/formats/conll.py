"""CoNLL / BIO token-tag files: one token per line, the tag in the last column, blank lines between
sentences, `-DOCSTART-` lines between documents.

Why this shape: the MTL-Bioinformatics-2016 NER files (NCBI-disease, BC5CDR, JNLPBA) are the usual
training and evaluation data for BioMegatron NER, and their gold tokenization must survive into the
Document (`tokens`, `sentences`) so that labels can be aligned and written back exactly.

Reading rules (`read_conll`):

- Columns are split on tabs when the line has one, else on runs of whitespace; the first column is
  the token and the last the tag, any columns between are ignored. A line with one column (other
  than `-DOCSTART-`) or an empty token or tag is a `MalformedInputError` naming file and line.
- The last line must end with a newline: a file cut mid-line (a tag `B-Dis` cut from `B-Disease`
  would still parse) is a `MalformedInputError`, as in PubTator. One Document (a sentence, or a
  `-DOCSTART-` block) larger than the per-document limit (`corpora.formats.limits`) is a
  `DocumentTooLargeError`.
- A blank (or whitespace-only) line ends a sentence. A line whose first column is `-DOCSTART-`
  (with or without a tag) starts a new document.
- Without any `-DOCSTART-` line (NCBI-disease and BC5CDR MTL files) each sentence is its own
  Document; from the first `-DOCSTART-` on, each `-DOCSTART-` block is one Document (sentences
  before the first `-DOCSTART-`, if any, stay one Document each). Ids are `f"{stem}-{n}"`, n
  counting Documents from 1 in file order (so the sentence number, or the block number). Empty
  blocks (a `-DOCSTART-` right before another) make no Document. `document_id` equals `id`.
- Document text: tokens joined by single spaces, sentences joined by a single space. One passage per
  sentence (type "sentence"); `tokens` and `sentences` hold the file's gold tokenization as spans.
- Tags: `O`, and `B-`, `I-` (IOB2, and IOB1 where a chunk may start with `I-`), `E-`/`L-` and
  `S-`/`U-` (BIOES/BILOU) followed by a non-empty type. Chunks follow conlleval: `B-`/`S-`/`U-`
  always start an entity; an `I-X` or `E-X`/`L-X` continues the open entity only when that entity
  has type X and was not closed by an `E-`/`L-`/`S-`/`U-`; otherwise (after `O`, after another type,
  after a closing tag) it starts a new entity. `E-`/`L-`/`S-`/`U-` close the entity they end.
  Anything else (`B`, `X-Foo`, `b-Disease`, `B-`) is a `MalformedInputError` naming file and line.
- Entities get ids `T1`, `T2`, ... in document order (stable across runs), text = the joined tokens.
- `metadata.extra` is `{"conll": {"docstart": true}}` for documents read from `-DOCSTART-` blocks, so
  that `write_conll` writes the boundary back.

`write_conll(docs, path)` writes token and IOB2 tag (tab-separated) from `tokens`, `sentences` and
`entities`, so read -> write -> read gives equal Documents, and an IOB2 two-column file comes back
byte for byte (up to trailing blank lines; `-DOCSTART-` is written as `-DOCSTART-<TAB>O`). Extra
middle columns of the input (POS, chunk) are not kept.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from corpora.errors import EmptyInputError, MalformedInputError
from corpora.formats.limits import max_document_bytes, too_large
from corpora.formats.textio import iter_lines, sha256_file
from corpora.schema import Document, Entity, Metadata, Source, Span, passages_from_texts

DOCSTART = "-DOCSTART-"
FORMAT_NAME = "conll"
_STARTS = {"B", "S", "U"}
_CONTINUES = {"I", "E", "L"}
_CLOSES = {"E", "L", "S", "U"}


@dataclass
class _Sentence:
    tokens: list[str] = field(default_factory=list)
    tags: list[tuple[str, str | None]] = field(default_factory=list)  # (prefix, type); ("O", None)


def file_stem(path: Path) -> str:
    """The file name without `.gz` and its last suffix (`devel.tsv.gz` -> `devel`)."""
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    return Path(name).stem


def parse_tag(tag: str, path: Path, line: int) -> tuple[str, str | None]:
    """Split a tag into (prefix, type); `O` gives ("O", None); anything outside the schemes raises."""
    if tag == "O":
        return "O", None
    prefix, sep, etype = tag.partition("-")
    if not sep or prefix not in _STARTS | _CONTINUES or not etype:
        raise MalformedInputError(path, f"tag {tag!r} is not O or B-/I-/E-/L-/S-/U- followed by a type", line=line)
    return prefix, etype


def read_conll(path: str | Path) -> Iterator[Document]:
    """Stream Documents from a CoNLL/BIO file (see the module docstring for the rules)."""
    p = Path(path)
    stem = file_stem(p)
    source = Source(path=str(p), sha256=sha256_file(p), format=FORMAT_NAME)
    for n, (docstart, sentences) in enumerate(_groups(p), start=1):
        yield _build(f"{stem}-{n}", sentences, source, docstart=docstart)


def _groups(p: Path) -> Iterator[tuple[bool, list[_Sentence]]]:
    """Yield (from a -DOCSTART- block?, sentences) per Document, in file order, as soon as complete."""
    docstart_mode = False
    block: list[_Sentence] = []
    sentence = _Sentence()
    seen_token = False
    limit = max_document_bytes()
    size = 0  # bytes of the Document being collected (its sentence, or its -DOCSTART- block)
    for lineno, raw in iter_lines(p, final_newline=True):
        size += len(raw) + 1
        if size > limit:
            raise too_large(p, "one document (a sentence, or a -DOCSTART- block)", size, limit, line=lineno)
        cols = raw.split("\t") if "\t" in raw else raw.split()
        token = cols[0].strip() if cols else ""
        if not raw.strip() or token == DOCSTART:
            if sentence.tokens:
                if docstart_mode:
                    block.append(sentence)
                else:
                    yield False, [sentence]
                    size = 0
                sentence = _Sentence()
            if token == DOCSTART:
                if block:
                    yield True, block
                block = []
                docstart_mode = True
                size = 0
            continue
        if len(cols) < 2:
            raise MalformedInputError(p, f"line has one column ({raw.strip()!r}); expected token and tag", line=lineno)
        tag = cols[-1].strip()
        if not token or not tag:
            raise MalformedInputError(p, f"empty {'token' if not token else 'tag'} in {raw!r}", line=lineno)
        sentence.tags.append(parse_tag(tag, p, lineno))
        sentence.tokens.append(token)
        seen_token = True
    if sentence.tokens:
        if docstart_mode:
            block.append(sentence)
        else:
            yield False, [sentence]
    if block:
        yield True, block
    if not seen_token:
        raise EmptyInputError(p, "no token lines (only blank or -DOCSTART- lines)")


def _build(doc_id: str, sentences: list[_Sentence], source: Source, *, docstart: bool) -> Document:
    """Lay sentences out as passages and turn their tags into entities."""
    passages = passages_from_texts([("sentence", " ".join(s.tokens)) for s in sentences], " ", f"{doc_id}.s")
    doc = Document(id=doc_id, document_id=doc_id, source=source, passages=passages)
    if docstart:
        doc.metadata = Metadata(extra=json.dumps({"conll": {"docstart": True}}))
    for passage, sent in zip(passages, sentences):
        cursor = passage.offsets[0][0]
        doc.sentences.append(Span(cursor, passage.offsets[0][1]))
        first_token = len(doc.tokens)
        for tok in sent.tokens:
            doc.tokens.append(Span(cursor, cursor + len(tok)))
            cursor += len(tok) + 1
        for start, end, etype in chunks(sent.tags):
            s, e = doc.tokens[first_token + start].start, doc.tokens[first_token + end - 1].end
            doc.entities.append(
                Entity(
                    id=f"T{len(doc.entities) + 1}",
                    type=etype,
                    text=[passage.text[s - passage.offsets[0][0] : e - passage.offsets[0][0]]],
                    offsets=[[s, e]],
                )
            )
    return doc


def chunks(tags: list[tuple[str, str | None]]) -> list[tuple[int, int, str]]:
    """(first token, end token exclusive, type) of each entity, conlleval-style (see module doc)."""
    found: list[tuple[int, int, str]] = []
    open_start: int | None = None
    open_type: str | None = None
    for i, (prefix, etype) in enumerate(tags):
        continues = prefix in _CONTINUES and open_start is not None and open_type == etype
        if not continues and open_start is not None:
            found.append((open_start, i, open_type))  # type: ignore[arg-type]
            open_start = open_type = None
        if prefix == "O":
            continue
        if not continues:
            open_start, open_type = i, etype
        if prefix in _CLOSES:
            found.append((open_start, i + 1, open_type))  # type: ignore[arg-type]
            open_start = open_type = None
    if open_start is not None:
        found.append((open_start, len(tags), open_type))  # type: ignore[arg-type]
    return found


def iob2_tags(doc: Document, out: Path) -> list[str]:
    """One IOB2 tag per token of `doc`, from its entities; entities must sit on token boundaries."""
    tags = ["O"] * len(doc.tokens)
    starts = {t.start: i for i, t in enumerate(doc.tokens)}
    ends = {t.end: i for i, t in enumerate(doc.tokens)}
    for ent in doc.entities:
        if len(ent.offsets) != 1:
            raise MalformedInputError(
                out, f"entity {ent.id} is discontinuous; BIO tags cannot express it", record=doc.id
            )
        s, e = ent.offsets[0]
        if s not in starts or e not in ends or ends[e] < starts[s]:
            raise MalformedInputError(
                out, f"entity {ent.id} offsets {s}-{e} do not fall on token boundaries", record=doc.id
            )
        first, last = starts[s], ends[e]
        if any(tags[i] != "O" for i in range(first, last + 1)):
            raise MalformedInputError(
                out, f"entity {ent.id} overlaps another entity; BIO tags cannot express it", record=doc.id
            )
        tags[first] = f"B-{ent.type}"
        for i in range(first + 1, last + 1):
            tags[i] = f"I-{ent.type}"
    return tags


def _is_docstart(doc: Document) -> bool:
    if not doc.metadata.extra:
        return False
    try:
        return bool(json.loads(doc.metadata.extra).get("conll", {}).get("docstart"))
    except (ValueError, AttributeError):
        return False


def write_conll(docs: Iterable[Document], path: str | Path, *, docstart: bool | None = None) -> int:
    """Write token<TAB>IOB2-tag lines; returns the number of documents written.

    `docstart=None` writes a `-DOCSTART-<TAB>O` line (and a blank line) before documents read from
    `-DOCSTART-` blocks; True/False forces it for all. Documents need `tokens` and `sentences`. The
    file is written beside the target and renamed, so a failure never leaves half a file.
    """
    out = Path(path)
    tmp = out.with_name(out.name + ".tmp")
    n = 0
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            for doc in docs:
                if not doc.tokens or not doc.sentences:
                    raise MalformedInputError(out, "document has no tokens or sentences to write", record=doc.id)
                text = doc.text
                tags = iob2_tags(doc, out)
                if docstart if docstart is not None else _is_docstart(doc):
                    fh.write(f"{DOCSTART}\tO\n\n")
                ti = 0
                for sent in doc.sentences:
                    while ti < len(doc.tokens) and doc.tokens[ti].end <= sent.end:
                        tok = doc.tokens[ti]
                        token = text[tok.start : tok.end]
                        if not token or any(c.isspace() for c in token):
                            raise MalformedInputError(
                                out, f"token {ti} ({token!r}) is empty or holds whitespace", record=doc.id
                            )
                        fh.write(f"{token}\t{tags[ti]}\n")
                        ti += 1
                    fh.write("\n")
                if ti != len(doc.tokens):
                    raise MalformedInputError(
                        out, f"{len(doc.tokens) - ti} tokens lie outside every sentence", record=doc.id
                    )
                n += 1
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return n


__all__ = ["read_conll", "write_conll", "chunks", "parse_tag", "iob2_tags"]
