"""RE candidates on the bundled ChemProt and BC5CDR samples, checked against independent parses of the
raw files (sentences from `tests.helpers.re_samples.split_sentences_simple`)."""

from __future__ import annotations

import re
from collections import defaultdict

from biomodels.data.re_candidates import BC5CDR_CID_TASK, CHEMPROT_TASK, RelationTask, generate_candidates
from corpora.formats.chemprot import read_chemprot
from corpora.formats.pubtator import read_pubtator
from corpora.schema import Document
from tests.helpers.re_samples import CDR, CHEMPROT, split_sentences_simple, with_sentences


def test_sentence_helper_spans() -> None:
    text = "Rg1 binds ER. It was shown (p. 3) that X. Y is 2. c. end"
    spans = split_sentences_simple(text)
    assert [text[s:e] for s, e in spans] == ["Rg1 binds ER.", "It was shown (p. 3) that X.", "Y is 2. c. end"]
    for doc in with_sentences(list(read_chemprot(CHEMPROT))):
        t = doc.text
        assert doc.sentences[0].start == 0 and doc.sentences[-1].end == len(t)
        for a, b in zip(doc.sentences, doc.sentences[1:]):
            assert t[a.end - 1] == "." and t[a.end : b.start] == " " and t[b.start].isupper()


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


def test_chemprot_candidates_on_scispacy_sentences() -> None:
    """The same independent pair count with the sentences of the real preprocessing (when present)."""
    from corpora.preprocess import build_pipeline, preprocess_documents

    docs = list(preprocess_documents(list(read_chemprot(CHEMPROT))[:20], build_pipeline()))
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
