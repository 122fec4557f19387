"""The array matchers answer exactly what spaCy's Matcher answers, and the detector finds the same
abbreviations with them as scispaCy's own detector does, on every bundled passage."""

from __future__ import annotations

import random

import pytest
import spacy
from scispacy.custom_tokenizer import combined_rule_tokenizer
from spacy.matcher import Matcher
from spacy.tokens import Doc

from corpora.formats.registry import detect_format, expand_inputs, get_reader
from corpora.preprocess.abbreviation_matchers import BracketPairMatcher, OrthSequenceMatcher, use_array_matchers
from corpora.preprocess.pipeline import build_pipeline
from corpora.schema import Document
from tests.helpers.paths import ROOT

SAMPLES = ROOT / "corpora" / "samples"

pytestmark = pytest.mark.filterwarnings("ignore:.*W036")


@pytest.fixture(scope="module")
def vocab():
    return spacy.blank("en").vocab


def _random_docs(vocab, words: list[str], n: int, seed: int) -> list[Doc]:
    rng = random.Random(seed)
    return [Doc(vocab, words=[rng.choice(words) for _ in range(rng.randint(1, 40))]) for _ in range(n)]


def test_bracket_pairs_equal_spacy_matcher_in_order(vocab):
    spacy_matcher = Matcher(vocab)
    spacy_matcher.add("parenthesis", [[{"ORTH": "("}, {"OP": "{1,8}"}, {"ORTH": ")"}]])
    ours = BracketPairMatcher(vocab)
    docs = _random_docs(vocab, ["(", ")", "a", "b", "(", ")", "IL-2"], 3000, seed=1)
    docs.append(Doc(vocab, words=["(", "(", "(", ")", ")", ")"]))
    nonempty = 0
    for doc in docs:
        expected = spacy_matcher(doc)
        assert ours(doc) == expected, [t.text for t in doc]
        nonempty += bool(expected)
    assert nonempty > 1000  # the random documents did exercise the pattern


def test_orth_sequences_equal_spacy_matcher(vocab):
    patterns = {"IL-2": ["IL", "-", "2"], "TNF": ["TNF"], "IL": ["IL"], "a b a": ["a", "b", "a"]}
    spacy_matcher, ours = Matcher(vocab), OrthSequenceMatcher(vocab)
    for key, words in patterns.items():
        spacy_matcher.add(key, [[{"ORTH": w} for w in words]])
        ours.add(key, [[{"ORTH": w} for w in words]])
    docs = _random_docs(vocab, ["IL", "-", "2", "TNF", "a", "b", "("], 2000, seed=2)
    for doc in docs:
        # spaCy orders same-end matches by its internal state order; compare as sorted lists
        assert sorted(ours(doc), key=lambda m: (m[2], m[1])) == sorted(spacy_matcher(doc), key=lambda m: (m[2], m[1]))
    assert len(ours) == 4 and "TNF" in ours
    ours.remove("TNF")
    assert "TNF" not in ours
    with pytest.raises(ValueError, match="no pattern .* 'TNF'"):
        ours.remove("TNF")
    with pytest.raises(ValueError, match="ORTH"):
        ours.add("x", [[{"LOWER": "x"}]])
    with pytest.raises(TypeError, match="spaCy Doc"):
        ours(docs[0][0:2])
    assert OrthSequenceMatcher(vocab)(docs[0]) == []
    assert ours(Doc(vocab, words=[])) == []


def _bundled_texts() -> list[str]:
    texts = []
    for path in expand_inputs([SAMPLES]):
        for doc in get_reader(detect_format(path))(path):
            if isinstance(doc, Document):
                texts += [p.text for p in doc.passages if p.text.strip()]
    return texts


def test_detector_with_array_matchers_finds_what_scispacy_finds_on_every_bundled_passage():
    reference = spacy.blank("en")
    reference.tokenizer = combined_rule_tokenizer(reference)
    reference.add_pipe("abbreviation_detector")  # scispaCy's own matchers, unbounded "( any+ )"
    ours = build_pipeline()
    assert type(ours.get_pipe("abbreviation_detector").matcher) is BracketPairMatcher
    texts = _bundled_texts()
    found = 0
    for a, b in zip(ours.pipe(texts), reference.pipe(texts)):
        key = lambda doc: sorted(
            (s.start_char, s.end_char, s._.long_form.start_char, s._.long_form.end_char) for s in doc._.abbreviations
        )
        assert key(a) == key(b), a.text
        found += len(a._.abbreviations)
    assert len(texts) > 1500 and found > 500


def test_use_array_matchers_leaves_an_unknown_detector_alone():
    class Other:
        matcher = None

    other = Other()
    assert use_array_matchers(other) is False and other.matcher is None
