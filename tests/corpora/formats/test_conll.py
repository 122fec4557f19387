"""CoNLL/BIO reader and writer on the bundled MTL samples; expectations are recomputed from the raw
files here with a deliberately simple scan, independent of corpora.formats.conll."""

from __future__ import annotations

import gzip
import shutil
from collections import Counter
from pathlib import Path

import pytest

from corpora.errors import EmptyInputError, MalformedInputError
from corpora.formats.conll import read_conll, write_conll
from corpora.formats.registry import detect_format, get_reader
from corpora.validation import check_entity_offsets
from tests.helpers.paths import ROOT

SAMPLES = ROOT / "corpora" / "samples"
FILES = [
    SAMPLES / "ncbi-disease" / "train_sample.tsv",
    SAMPLES / "ncbi-disease" / "devel_sample.tsv",
    SAMPLES / "bc5cdr" / "BC5CDR-IOB_train_sample.tsv",
    SAMPLES / "jnlpba-conll" / "devel_sample.tsv",
]


def raw_scan(path: Path) -> dict:
    """Tokens, sentences, DOCSTART count and IOB2 entities straight from the lines of the file."""
    sentences: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    docstarts = 0
    for line in path.read_text(encoding="utf-8").split("\n"):
        if not line.strip() or line.startswith("-DOCSTART-"):
            docstarts += line.startswith("-DOCSTART-")
            if current:
                sentences.append(current)
                current = []
            continue
        token, tag = line.split("\t")
        current.append((token, tag))
    if current:
        sentences.append(current)
    entities = []  # (type, text) in file order, B- starts, following I- of the same type continue
    for sent in sentences:
        for i, (token, tag) in enumerate(sent):
            if tag.startswith("B-"):
                words = [token]
                j = i + 1
                while j < len(sent) and sent[j][1] == "I-" + tag[2:]:
                    words.append(sent[j][0])
                    j += 1
                entities.append((tag[2:], " ".join(words)))
    return {"sentences": sentences, "docstarts": docstarts, "entities": entities}


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_counts_offsets_and_tokens_match_the_raw_file(path: Path) -> None:
    raw = raw_scan(path)
    tags = [tag for sent in raw["sentences"] for _, tag in sent]
    # The samples are strict IOB2 (every I-X follows B-X or I-X), so B- tags count the entities.
    for sent in raw["sentences"]:
        for (_, prev), (_, tag) in zip([("", "O")] + sent, sent):
            if tag.startswith("I-"):
                assert prev in ("B-" + tag[2:], tag)
    b_counts = Counter(t[2:] for t in tags if t.startswith("B-"))

    docs = list(read_conll(path))
    expected_docs = raw["docstarts"] or len(raw["sentences"])
    assert len(docs) == expected_docs
    assert [d.id for d in docs] == [f"{path.stem}-{n}" for n in range(1, expected_docs + 1)]
    assert sum(len(d.sentences) for d in docs) == len(raw["sentences"])
    assert sum(len(d.tokens) for d in docs) == len(tags)
    assert Counter(e.type for d in docs for e in d.entities) == b_counts

    got_entities = []
    got_sentences = []
    got_tokens = []
    for doc in docs:
        text = doc.text
        check_entity_offsets(doc, path)
        assert len({e.id for e in doc.entities}) == len(doc.entities)
        for ent in doc.entities:
            ((s, e),) = ent.offsets
            assert text[s:e] == ent.text[0]
            got_entities.append((ent.type, ent.text[0]))
        got_sentences += [text[s.start : s.end] for s in doc.sentences]
        got_tokens += [text[t.start : t.end] for t in doc.tokens]
        assert [p.type for p in doc.passages] == ["sentence"] * len(doc.sentences)
        assert [(p.offsets[0][0], p.offsets[0][1]) for p in doc.passages] == [(s.start, s.end) for s in doc.sentences]
    assert got_entities == raw["entities"]
    assert got_sentences == [" ".join(tok for tok, _ in sent) for sent in raw["sentences"]]
    assert got_tokens == [tok for sent in raw["sentences"] for tok, _ in sent]


def test_docstart_blocks_hold_several_sentences() -> None:
    path = SAMPLES / "jnlpba-conll" / "devel_sample.tsv"
    docs = list(read_conll(path))
    assert len(docs) == 10
    assert all(len(d.sentences) > 1 for d in docs)
    # the first abstract's title is the first sentence of the file
    first = path.read_text(encoding="utf-8").split("\n\n")[1].split("\n")
    assert docs[0].passages[0].text == " ".join(line.split("\t")[0] for line in first)


def _normalised(doc, keep_ids: bool = True) -> dict:
    """The Document as a dict without its source (the file differs); ids too unless kept."""
    d = doc.to_dict()
    d.pop("source")
    if not keep_ids:
        d.pop("id"), d.pop("document_id")
        for p in d["passages"]:
            p.pop("id")
    return d


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_round_trip_is_exact(path: Path, tmp_path: Path) -> None:
    docs = list(read_conll(path))
    out = tmp_path / path.name
    assert write_conll(docs, out) == len(docs)
    assert out.read_text(encoding="utf-8").rstrip("\n") == path.read_text(encoding="utf-8").rstrip("\n")
    again = list(read_conll(out))
    assert [_normalised(d) for d in again] == [_normalised(d) for d in docs]


def _write(tmp_path: Path, name: str, body: str) -> Path:
    p = tmp_path / name
    p.write_text(body, encoding="utf-8")
    return p


def _spans(doc) -> list[tuple[str, str]]:
    return [(e.type, e.text[0]) for e in doc.entities]


def test_iob1_bioes_and_bilou_chunks(tmp_path: Path) -> None:
    body = (
        # IOB1: I-X after O starts an entity; I-Y after I-X starts a new one; B-X after I-X splits
        "a\tI-X\nb\tI-X\nc\tO\nd\tI-X\ne\tI-Y\nf\tB-Y\ng\tI-Y\n\n"
        # BIOES: S- is a one-token entity, E- closes, an I- right after E- starts a new entity
        "h\tS-X\ni\tB-X\nj\tE-X\nk\tI-X\nl\tO\nm\tE-Y\n\n"
        # BILOU
        "n\tU-X\no\tB-Y\np\tL-Y\nq\tL-Y\n"
    )
    docs = list(read_conll(_write(tmp_path, "mixed.tsv", body)))
    assert _spans(docs[0]) == [("X", "a b"), ("X", "d"), ("Y", "e"), ("Y", "f g")]
    assert _spans(docs[1]) == [("X", "h"), ("X", "i j"), ("X", "k"), ("Y", "m")]
    assert _spans(docs[2]) == [("X", "n"), ("Y", "o p"), ("Y", "q")]
    for doc in docs:
        check_entity_offsets(doc, "mixed.tsv")
    # written back as IOB2, which reads to the same documents
    out = tmp_path / "iob2.tsv"
    write_conll(docs, out)
    assert out.read_text().split("\n\n")[1].split("\n") == ["h\tB-X", "i\tB-X", "j\tI-X", "k\tB-X", "l\tO", "m\tB-Y"]
    assert [_normalised(d, False) for d in read_conll(out)] == [_normalised(d, False) for d in docs]


def test_whitespace_columns_docstart_without_tag_and_middle_columns(tmp_path: Path) -> None:
    body = (
        "-DOCSTART-\n\nIL-2 NN B-protein\ngene NN I-protein\n\n"
        "-DOCSTART- -X- O\nT NN B-cell_type\ncells NNS I-cell_type\n"
    )
    docs = list(read_conll(_write(tmp_path, "ws.txt", body)))
    assert [d.id for d in docs] == ["ws-1", "ws-2"]
    assert [_spans(d) for d in docs] == [[("protein", "IL-2 gene")], [("cell_type", "T cells")]]
    out = tmp_path / "ws_out.tsv"
    write_conll(docs, out)
    assert out.read_text() == (
        "-DOCSTART-\tO\n\nIL-2\tB-protein\ngene\tI-protein\n\n-DOCSTART-\tO\n\nT\tB-cell_type\ncells\tI-cell_type\n\n"
    )


def test_gzip_input_keeps_the_stem(tmp_path: Path) -> None:
    src = SAMPLES / "jnlpba-conll" / "devel_sample.tsv"
    gz = tmp_path / "devel_sample.tsv.gz"
    with open(src, "rb") as fin, gzip.open(gz, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    plain, zipped = list(read_conll(src)), list(read_conll(gz))
    assert [d.id for d in zipped] == [d.id for d in plain]
    assert [d.text for d in zipped] == [d.text for d in plain]


def test_registry_detects_and_reads_conll() -> None:
    path = SAMPLES / "ncbi-disease" / "devel_sample.tsv"
    assert detect_format(path) == "conll"
    assert get_reader("conll") is read_conll


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        ("a\tO\nb\tB-X\nc\tX-Y\n", 3, "X-Y"),
        ("a\tO\n\nb\tB\n", 3, "'B'"),
        ("a\tO\nb\tb-Disease\n", 2, "b-Disease"),
        ("a\tO\nb\tB-\n", 2, "B-"),
        ("a\tO\nlonely\n", 2, "one column"),
        ("a\tO\n\nb\t\n", 3, "empty tag"),
    ],
)
def test_bad_lines_raise_naming_file_and_line(tmp_path: Path, body: str, line: int, words: str) -> None:
    path = _write(tmp_path, "bad.tsv", body)
    with pytest.raises(MalformedInputError) as info:
        list(read_conll(path))
    assert info.value.path == str(path)
    assert info.value.line == line
    assert f"{path}, line {line}" in str(info.value)
    assert words in str(info.value)


def test_file_without_tokens_is_empty_input(tmp_path: Path) -> None:
    with pytest.raises(EmptyInputError):
        list(read_conll(_write(tmp_path, "empty.tsv", "-DOCSTART-\tO\n\n\n")))


def test_writer_refuses_entities_off_token_boundaries(tmp_path: Path) -> None:
    doc = next(read_conll(_write(tmp_path, "one.tsv", "ab\tB-X\ncd\tO\n")))
    doc.entities[0].offsets = [[0, 1]]
    doc.entities[0].text = ["a"]
    out = tmp_path / "out.tsv"
    with pytest.raises(MalformedInputError, match="token boundaries"):
        write_conll([doc], out)
    assert not out.exists() and not (tmp_path / "out.tsv.tmp").exists()


def test_a_last_line_cut_mid_tag_is_refused(tmp_path: Path) -> None:
    """Issue 14.7: `B-Dis` cut from `B-Disease` parsed as a Dis entity, silently."""
    f = _write(tmp_path, "cut.tsv", "Aspirin\tB-Chemical\nfor\tO\nfever\tB-Dis")
    with pytest.raises(MalformedInputError, match="line 3: the last line has no newline: the file looks truncated"):
        list(read_conll(f))
    f.write_text("Aspirin\tB-Chemical\nfor\tO\nfever\tB-Disease\n", encoding="utf-8")
    (doc,) = read_conll(f)
    assert [(e.type, e.text) for e in doc.entities] == [("Chemical", ["Aspirin"]), ("Disease", ["fever"])]
