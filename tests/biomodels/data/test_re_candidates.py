"""RE data on the bundled ChemProt and BC5CDR samples, checked against independent parses of the raw
files. Sentences come from `split_sentences_simple` below (". " before a capital letter), a stand-in
for corpora preprocessing that the test can verify on its own."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest

from biomodels.data.re_candidates import BC5CDR_CID_TASK, CHEMPROT_TASK, RelationTask, generate_candidates
from biomodels.data.re_features import missing_candidates, tokenize_re
from biomodels.data.re_marking import MarkedExample, mark_candidate, marker_tokens
from biomodels.data.re_masked_tsv import read_masked_re_tsv
from corpora.errors import ConfigError, MalformedInputError
from corpora.formats.chemprot import read_chemprot
from corpora.formats.pubtator import read_pubtator
from corpora.schema import Document, Span
from tests.helpers.paths import ROOT

SAMPLES = ROOT / "corpora" / "samples"
CHEMPROT = SAMPLES / "chemprot" / "chemprot_sample_abstracts.tsv"
CDR = SAMPLES / "bc5cdr" / "CDR_train_sample.PubTator.txt"
CPR = ("CPR:3", "CPR:4", "CPR:5", "CPR:6", "CPR:9")


def split_sentences_simple(text: str) -> list[tuple[int, int]]:
    """Test stand-in for preprocessing: a sentence ends at a "." followed by one space and a capital."""
    spans, start = [], 0
    for m in re.finditer(r"\. (?=[A-Z])", text):
        spans.append((start, m.start() + 1))
        start = m.end()
    spans.append((start, len(text)))
    return spans


def with_sentences(docs: list[Document]) -> list[Document]:
    for doc in docs:
        doc.sentences = [Span(s, e) for s, e in split_sentences_simple(doc.text)]
    return docs


def test_sentence_helper_spans() -> None:
    text = "Rg1 binds ER. It was shown (p. 3) that X. Y is 2. c. end"
    spans = split_sentences_simple(text)
    assert [text[s:e] for s, e in spans] == ["Rg1 binds ER.", "It was shown (p. 3) that X.", "Y is 2. c. end"]
    for doc in with_sentences(list(read_chemprot(CHEMPROT))):
        t = doc.text
        assert doc.sentences[0].start == 0 and doc.sentences[-1].end == len(t)
        for a, b in zip(doc.sentences, doc.sentences[1:]):
            assert t[a.end - 1] == "." and t[a.end : b.start] == " " and t[b.start].isupper()


@pytest.fixture(scope="module")
def chemprot_docs() -> list[Document]:
    return with_sentences(list(read_chemprot(CHEMPROT)))


def _raw_chemprot() -> tuple[
    dict[str, str], dict[str, dict[str, tuple[str, int, int, str]]], list[tuple[str, str, str, str]]
]:
    """Independent parse of the raw sample: texts (title + " " + abstract), entities, gold relations."""
    texts = {}
    for line in CHEMPROT.read_text(encoding="utf-8").splitlines():
        pmid, title, abstract = line.split("\t")
        texts[pmid] = title + " " + abstract
    ents: dict[str, dict[str, tuple[str, int, int, str]]] = defaultdict(dict)
    for line in (CHEMPROT.parent / "chemprot_sample_entities.tsv").read_text(encoding="utf-8").splitlines():
        pmid, tid, etype, s, e, txt = line.split("\t")
        ents[pmid][tid] = (etype, int(s), int(e), txt)
    gold = []
    for line in (CHEMPROT.parent / "chemprot_sample_gold_standard.tsv").read_text(encoding="utf-8").splitlines():
        pmid, group, a1, a2 = line.split("\t")
        gold.append((pmid, group, a1.split(":")[1], a2.split(":")[1]))
    return texts, ents, gold


def _sentence_index(spans: list[tuple[int, int]], start: int, end: int) -> int | None:
    """Sentence holding `start`, or None when the entity runs past its end (the module's rule)."""
    for k, (s, e) in enumerate(spans):
        if s <= start < e:
            return k if end <= e else None
    return None


def test_chemprot_candidate_counts_and_positives(chemprot_docs: list[Document]) -> None:
    cands, stats = generate_candidates(chemprot_docs, CHEMPROT_TASK)
    texts, ents, gold = _raw_chemprot()
    expected_pairs = 0
    sent_of: dict[tuple[str, str], int | None] = {}
    for pmid, text in texts.items():
        spans = split_sentences_simple(text)
        chems: dict[int, int] = defaultdict(int)
        genes: dict[int, int] = defaultdict(int)
        for tid, (etype, s, e, _) in ents[pmid].items():
            k = _sentence_index(spans, s, e)
            sent_of[(pmid, tid)] = k
            if k is None:
                continue
            if etype == "CHEMICAL":
                chems[k] += 1
            else:
                genes[k] += 1
        expected_pairs += sum(chems[k] * genes[k] for k in chems)
    assert len(cands) == stats.candidates == expected_pairs
    assert expected_pairs > 500  # about 18 per abstract, as in the BioELECTRA files
    # every gold relation whose arguments share a sentence is a positive with its group; no other positive
    # (one pair, 23220749 T12-T27, is gold for both CPR:4 and CPR:3: the first line's group wins)
    expected_pos: dict[tuple[str, str, str], str] = {}
    for pmid, group, a1, a2 in gold:
        if sent_of[(pmid, a1)] is not None and sent_of[(pmid, a1)] == sent_of[(pmid, a2)]:
            expected_pos.setdefault((pmid, a1, a2), group)
    got_pos = {(c.document_id, c.arg1.id, c.arg2.id): c.label for c in cands if c.label != "false"}
    assert got_pos == expected_pos
    assert len(got_pos) == sum(c.label != "false" for c in cands) == stats.positives
    assert expected_pos[("23220749", "T12", "T27")] == "CPR:4" and stats.label_conflicts == 1
    assert len(expected_pos) > 150
    assert stats.relations == len(gold) == 239
    assert stats.relations_covered == len(expected_pos) + 1  # both relations of the doubly labelled pair
    assert stats.cross_sentence + stats.unmatched == len(gold) - stats.relations_covered
    # candidate texts and argument offsets point at the raw entity texts
    for c in cands[:300]:
        assert c.sentence == texts[c.document_id][c.sentence_start : c.sentence_start + len(c.sentence)]
        for m in (c.arg1, c.arg2):
            etype, s, e, txt = ents[c.document_id][m.id]
            assert (m.type, m.start, m.end) == (etype, s, e)
            assert c.sentence[m.start - c.sentence_start : m.end - c.sentence_start] == txt


def _check_char_map(m: MarkedExample, doc_text: str) -> None:
    assert m.char_map is not None and len(m.char_map) == len(m.text)
    for i, src in enumerate(m.char_map):
        if src >= 0:
            assert m.text[i] == doc_text[src]


def test_marking_styles(chemprot_docs: list[Document]) -> None:
    cands, _ = generate_candidates(chemprot_docs, CHEMPROT_TASK)
    texts = {d.id: d.text for d in chemprot_docs}
    n_overlap = 0
    for c in cands:
        a1 = texts[c.document_id][c.arg1.start : c.arg1.end]
        a2 = texts[c.document_id][c.arg2.start : c.arg2.end]
        overlap = c.arg1.start < c.arg2.end and c.arg2.start < c.arg1.end
        n_overlap += overlap
        m = mark_candidate(c, "entity_markers")
        _check_char_map(m, texts[c.document_id])
        # between its markers each argument's text (nested arguments: with the other's markers inside)
        strip = lambda x: re.sub(r"\[/?E[12]\] | \[/E[12]\]", "", x)  # noqa: E731
        assert (
            strip(m.text[m.arg1_inner[0] : m.arg1_inner[1]]) == a1
            and strip(m.text[m.arg2_inner[0] : m.arg2_inner[1]]) == a2
        )
        if not overlap:
            assert m.text[m.arg1_inner[0] : m.arg1_inner[1]] == a1 and m.text[m.arg2_inner[0] : m.arg2_inner[1]] == a2
        assert m.text[m.arg1_span[0] :].startswith("[E1] ") and m.text[: m.arg1_span[1]].endswith(" [/E1]")
        assert m.text[m.arg2_span[0] :].startswith("[E2] ") and m.text[: m.arg2_span[1]].endswith(" [/E2]")
        # removing the markers gives back the sentence
        assert strip(m.text) == c.sentence
        t = mark_candidate(c, "typed_markers")
        assert t.text[t.arg2_span[0] :].startswith("[E2-GENE] ") and t.text[t.arg1_span[0] :].startswith(
            "[E1-CHEMICAL] "
        )
        b = mark_candidate(c, "blue")
        _check_char_map(b, texts[c.document_id])
        if overlap:
            assert b.arg1_span == b.arg2_span and b.text[b.arg1_span[0] : b.arg1_span[1]] == "@CHEM-GENE$"
        else:
            assert (
                b.text[b.arg1_span[0] : b.arg1_span[1]] == "@CHEMICAL$"
                and b.text[b.arg2_span[0] : b.arg2_span[1]] == "@GENE$"
            )
            # putting the mentions back gives the sentence
            first, second = sorted([(b.arg1_span, a1), (b.arg2_span, a2)])
            restored = (
                b.text[: first[0][0]]
                + first[1]
                + b.text[first[0][1] : second[0][0]]
                + second[1]
                + b.text[second[0][1] :]
            )
            assert restored == c.sentence
        e = mark_candidate(c, "bioelectra")
        _check_char_map(e, texts[c.document_id])
        assert e.text.count("BC6ENTC") == 1 and (e.text.count("BC6ENTG") == (0 if overlap else 1))
        free_others = [o for o in c.others if not any(o.start < x.end and x.start < o.end for x in (c.arg1, c.arg2))]
        assert 0 < e.text.count("BC6OTHER") <= len(free_others) or not free_others
    assert n_overlap > 0  # the sample has overlapping chemical/gene mentions (BLUE's @CHEM-GENE$ case)
    with pytest.raises(ConfigError):
        mark_candidate(cands[0], "nope")


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertTokenizerFast

    wp = BertWordPieceTokenizer(lowercase=True)
    wp.train_from_iterator(
        CHEMPROT.read_text(encoding="utf-8").splitlines(),
        vocab_size=500,
        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
        show_progress=False,
    )
    d = tmp_path_factory.mktemp("tok")
    wp.save_model(str(d))
    tok = BertTokenizerFast.from_pretrained(str(d))
    tok.add_special_tokens({"additional_special_tokens": marker_tokens("entity_markers") + marker_tokens("bioelectra")})
    return tok


def test_tokenize_re_labels_and_windows(chemprot_docs: list[Document], tokenizer) -> None:
    cands, _ = generate_candidates(chemprot_docs, CHEMPROT_TASK)
    label2id = {l: i for i, l in enumerate(("false",) + CPR)}
    e1, e2 = (tokenizer.convert_tokens_to_ids(t) for t in ("[E1]", "[E2]"))
    # roomy window: every candidate fits, markers are single tokens at the recorded positions
    feats = tokenize_re(cands, tokenizer, label2id, max_length=512)
    assert [f["_candidate_index"] for f in feats] == list(range(len(cands)))
    for f, c in zip(feats, cands):
        assert f["labels"] == label2id[c.label]
        assert f["input_ids"][f["_arg1_token_index"]] == e1 and f["input_ids"][f["_arg2_token_index"]] == e2
    # tight window: both arguments (markers included) stay inside; a candidate is missing only when
    # its marked arguments alone need more subwords than the window holds
    max_length = 32
    feats = tokenize_re(cands, tokenizer, label2id, max_length=max_length)
    by_index = {f["_candidate_index"]: f for f in feats}
    windowed = 0
    for i, c in enumerate(cands):
        m = mark_candidate(c, "entity_markers")
        enc = tokenizer(m.text, add_special_tokens=False, return_offsets_mapping=True)
        offs = enc["offset_mapping"]
        lo = min(j for j, (s, e) in enumerate(offs) if e > min(m.arg1_span[0], m.arg2_span[0]))
        hi = max(j for j, (s, e) in enumerate(offs) if s < max(m.arg1_span[1], m.arg2_span[1]))
        if hi - lo + 1 > max_length - 2:
            assert i not in by_index
            continue
        f = by_index[i]
        assert len(f["input_ids"]) <= max_length
        windowed += len(enc["input_ids"]) > max_length - 2
        ws, we = f["_char_window"]
        assert ws <= min(m.arg1_span[0], m.arg2_span[0]) and we >= max(m.arg1_span[1], m.arg2_span[1])
        inner = [o for o in f["_offset_mapping"] if o is not None]
        assert m.text[inner[0][0] : inner[-1][1]].count("[E1]") == 1
        assert f["input_ids"][f["_arg1_token_index"]] == e1 and f["input_ids"][f["_arg2_token_index"]] == e2
    assert windowed > 100
    assert missing_candidates(feats, len(cands)) == [i for i in range(len(cands)) if i not in by_index]


def test_tokenize_re_rejects_unknown_label(chemprot_docs, tokenizer) -> None:
    cands, _ = generate_candidates(chemprot_docs, CHEMPROT_TASK)
    with pytest.raises(ConfigError, match="label"):
        tokenize_re(cands[:5], tokenizer, {"CPR:3": 0}, max_length=128)


# ---------------------------------------------------------------------------------------- BC5CDR CID


def _raw_cdr() -> dict[str, tuple[str, list[tuple[int, int, str, set[str]]], set[tuple[str, str]]]]:
    docs: dict[str, tuple[str, list, set]] = {}
    title = {}
    for line in CDR.read_text(encoding="utf-8").splitlines():
        if "|t|" in line:
            pmid, _, t = line.split("|", 2)
            title[pmid] = t
        elif "|a|" in line:
            pmid, _, a = line.split("|", 2)
            docs[pmid] = (title[pmid] + " " + a, [], set())
        elif "\t" in line:
            cols = line.split("\t")
            if cols[1] == "CID":
                docs[cols[0]][2].add((cols[2], cols[3]))
            else:
                ids = {i for i in re.split(r"[|+]", cols[5]) if i != "-1"}
                docs[cols[0]][1].append((int(cols[1]), int(cols[2]), cols[4], ids))
    return docs


def test_bc5cdr_cid_concept_level_candidates() -> None:
    docs = with_sentences(list(read_pubtator(CDR)))
    cands, stats = generate_candidates(docs, BC5CDR_CID_TASK)
    raw = _raw_cdr()
    n_pairs = n_pos = 0
    covered_rel = 0
    for pmid, (text, mentions, cid) in raw.items():
        spans = split_sentences_simple(text)
        co_occurring: set[tuple[str, str]] = set()
        for k in range(len(spans)):
            inside = [m for m in mentions if _sentence_index(spans, m[0], m[1]) == k]
            for c in (m for m in inside if m[2] == "Chemical"):
                for d in (m for m in inside if m[2] == "Disease"):
                    n_pairs += 1
                    hit = {(x, y) for x in c[3] for y in d[3]} & cid
                    n_pos += bool(hit)
                    co_occurring |= hit
        covered_rel += len(co_occurring)
    assert len(cands) == n_pairs and sum(c.label == "CID" for c in cands) == n_pos
    assert n_pos > 50
    assert stats.relations == sum(len(v[2]) for v in raw.values()) == 98
    assert stats.relations_covered == covered_rel and stats.cross_sentence == 98 - covered_rel
    assert {c.label for c in cands} == {"CID", "false"}


def test_symmetric_task_makes_one_candidate_per_unordered_pair(chemprot_docs: list[Document]) -> None:
    task = RelationTask("genes", (("GENE-Y", "GENE-Y"),), None, symmetric=True)
    cands, _ = generate_candidates(chemprot_docs, task)
    ordered, _ = generate_candidates(chemprot_docs, RelationTask("genes", (("GENE-Y", "GENE-Y"),), None))
    assert len(ordered) == 2 * len(cands) > 0
    assert len({frozenset((c.arg1.id, c.arg2.id, c.document_id)) for c in cands}) == len(cands)


# ------------------------------------------------------------------------------- masked TSV readers


def test_read_blue_and_bioelectra_files(tmp_path: Path, tokenizer) -> None:
    blue = tmp_path / "dev.tsv"
    blue.write_text(
        "10064839.T50.T56\tBinding of @CHEMICAL$ to @GENE$ and its effects.\tfalse\n"
        "10064839.T51.T57\t@GENE$ is inhibited by @CHEMICAL$ strongly.\tCPR:4\n"
        "10064839.T52.T58\tThe @CHEM-GENE$ complex.\tfalse\n"
        "10064839.T51.T57\t@GENE$ is inhibited by @CHEMICAL$ strongly.\tCPR:3\n",  # a pair with two groups
        encoding="utf-8",
    )
    rows = read_masked_re_tsv(blue)
    assert [r.id for r in rows] == ["10064839.T50.T56", "10064839.T51.T57", "10064839.T52.T58", "10064839.T51.T57"]
    assert [r.label for r in rows] == ["false", "CPR:4", "false", "CPR:3"]
    assert (
        rows[1].text[slice(*rows[1].arg1_span)] == "@CHEMICAL$" and rows[1].text[slice(*rows[1].arg2_span)] == "@GENE$"
    )
    assert rows[1].arg2_span[0] == 0
    assert rows[2].arg1_span == rows[2].arg2_span and rows[2].text[slice(*rows[2].arg1_span)] == "@CHEM-GENE$"
    feats = tokenize_re(rows, tokenizer, {"false": 0, "CPR:4": 1, "CPR:3": 2}, max_length=64)
    assert [f["labels"] for f in feats] == [0, 1, 0, 2]

    bio = tmp_path / "train.tsv"
    bio.write_text(
        "sentence\tlabel\nBC6ENTG inhibitors are BC6ENTC - derived BC6OTHER .\tCPR:4\nBaseline CHEM , BC6ENTG .\tFalse\n",
        encoding="utf-8",
    )
    rows = read_masked_re_tsv(bio)
    assert [r.id for r in rows] == ["train:2", "train:3"] and [r.label for r in rows] == ["CPR:4", "False"]
    assert rows[0].text[slice(*rows[0].arg1_span)] == "BC6ENTC" and rows[0].arg2_span == (0, 7)
    assert rows[1].arg1_span is None and rows[1].text[slice(*rows[1].arg2_span)] == "BC6ENTG"
    feats = tokenize_re(rows, tokenizer, {"False": 0, "CPR:4": 1}, max_length=64)
    assert len(feats) == 2 and feats[1]["_arg1_token_index"] is None


@pytest.mark.parametrize(
    ("content", "line", "match"),
    [
        ("a\t@CHEMICAL$ x @GENE$\tfalse\nb\tno tab here\n", 2, "columns"),
        ("\t@CHEMICAL$ x @GENE$\tfalse\n", 1, "empty id"),
        ("a\t@CHEMICAL$ x @GENE$\t\n", 1, "empty label"),
        ("a\tno masks at all\tfalse\n", 1, "no argument mask"),
        ("sentence\tlabel\nBC6ENTC x BC6ENTG\tCPR:3\textra\n", 2, "columns"),
    ],
)
def test_read_masked_errors_name_file_and_line(tmp_path: Path, content: str, line: int, match: str) -> None:
    p = tmp_path / "bad.tsv"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(MalformedInputError, match=match) as info:
        read_masked_re_tsv(p)
    assert info.value.path == str(p) and info.value.line == line
    assert f"line {line}" in str(info.value)


def test_chemprot_candidates_on_scispacy_sentences() -> None:
    """The same independent pair count with the sentences of the real preprocessing (when present)."""
    preprocess = pytest.importorskip("corpora.preprocess.pipeline")
    docs = list(preprocess.preprocess_documents(list(read_chemprot(CHEMPROT))[:20], preprocess.build_pipeline()))
    cands, stats = generate_candidates(docs, CHEMPROT_TASK)
    _, ents, gold = _raw_chemprot()
    expected = 0
    positives = set()
    for d in docs:
        spans = [(s.start, s.end) for s in sorted(d.sentences, key=lambda s: s.start)]
        where = {tid: _sentence_index(spans, s, e) for tid, (_, s, e, _) in ents[d.id].items()}
        for k in range(len(spans)):
            chems = sum(1 for tid, v in ents[d.id].items() if where[tid] == k and v[0] == "CHEMICAL")
            genes = sum(1 for tid, v in ents[d.id].items() if where[tid] == k and v[0] != "CHEMICAL")
            expected += chems * genes
        positives |= {
            (d.id, a1, a2)
            for pmid, _, a1, a2 in gold
            if pmid == d.id and where[a1] is not None and where[a1] == where[a2]
        }
    assert len(cands) == expected > 200
    assert {(c.document_id, c.arg1.id, c.arg2.id) for c in cands if c.label != "false"} == positives
