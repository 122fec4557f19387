"""Rule-based sentence boundaries for biomedical text, as a spaCy component.

Why our own rules: pySBD (scispaCy's `pysbd_sentencizer`) segments the bundled abstracts at about
66k characters/s, ten times slower than the whole tokenizer, and spaCy's `sentencizer` splits after
every "." token ("E. coli", "et al. (2001)", "Fig. 2"). These rules look at the tokens the scispaCy
tokenizer already made (about a quarter of the tokenizer's own time on the bundled abstracts, most
of it fetching token texts) and never move a character.

A token starts a sentence when it follows, across whitespace, a sentence-final token (".", "?",
"!", "...", or a word that swallowed its final period such as "CsrS." or "Inc."), possibly followed
by closing brackets or quotes, and:

* it lies outside every matched pair of brackets (no split inside "(...)" or "[...]");
* after a plain "." it looks like a sentence start: a capital, a digit, a Greek letter, a word with
  a capital or digit inside ("mRNA", "p53"), or a bracket/quote opening one; a plain lowercase
  word is taken as evidence that the period belonged to an abbreviation;
* after a word ending in "." it starts with a capital letter, and the word is not an abbreviation
  that never ends a sentence ("e.g.", "i.e.", "vs.", "Fig.", "Dr.", "approx." ...); after an
  initial or a species abbreviation ("E.", "sp.") only a common sentence-opening word (The, We, In,
  However ...) starts a sentence, so "S. Typhimurium" and "J. Smith" stay whole while
  "hepatitis B. We" splits.

A blank line (or a form feed, or a Unicode paragraph/line separator) always ends a sentence; a single
newline does when the next token looks like a sentence start (titles without a final period).
Whitespace tokens never start a sentence, so they stay at the end of the sentence before them.

Tested in `tests/corpora/preprocess/test_documents.py`.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections.abc import Sequence

import numpy as np
from spacy.attrs import ORTH, SENT_START, SPACY
from spacy.language import Language
from spacy.tokens import Doc

COMPONENT_NAME = "biomed_sentence_segmenter"
# Bump when the rules change: it is part of the pipeline fingerprint that preprocessing caches on.
RULES_VERSION = "1"

_TERMINAL_CHARS = frozenset(".?!…")
_CLOSERS = frozenset({")", "]", "}", '"', "'", "”", "’", "»"})
_OPENERS = frozenset({"(", "[", "{", '"', "'", "“", "‘", "«"})
_PAIRS = {")": "(", "]": "[", "}": "{"}
_BRACKETS = frozenset("()[]{}")
# A matched bracket pair longer than this many tokens does not protect its content: it is more likely
# a stray bracket matched with a distant one than a parenthetical.
_MAX_BRACKET_TOKENS = 100
# A blank line (possibly holding spaces or tabs), a form feed, a vertical tab, a Unicode line or
# paragraph separator, or an ASCII file/group/record separator.
_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n|[\x0b\x0c\x1c-\x1e\u2028\u2029]")

# Abbreviations after which a sentence (practically) never ends in biomedical abstracts. A word
# split from its period by the tokenizer ("approx" ".") is looked up with the period put back.
NEVER_FINAL = frozenset(
    """e.g. eg. i.e. ie. vs. Vs. cf. Cf. viz. approx. Approx. ca. resp. Fig. Figs. fig. figs. Eq. Eqs.
    eq. eqs. Ref. Refs. ref. refs. No. Nos. no. nos. Vol. vol. pp. Dr. Drs. Mr. Mrs. Ms. Prof. St.
    Sr. Jr. Sec. Secs. sec. Sect. Suppl. suppl. Tab. Ch. Chap. incl. U.S. U.K.""".split()
)
# Abbreviations that end a sentence only before a common sentence-opening word.
AMBIGUOUS_FINAL = frozenset("sp. spp. subsp. var. gen. nov.".split())
SENTENCE_OPENERS = frozenset(
    """A An The This These That Those It Its In On At By For From Of To With Within Without After
    Before During Among Between Under Over Here There We Our Us They Their He She His Her However
    Moreover Furthermore Further Thus Therefore Hence Consequently Finally Also Although Though
    While Whereas When Where Since Because As If Both All Each No Neither None Such Several Many
    Most Some One Two Three Taken Together Using Given Despite Additionally Similarly Interestingly
    Importantly Notably Overall Conversely Nevertheless Nonetheless Patients Results Conclusions
    Conclusion Methods Background Objective Objectives Is Are Was Were Do Does Did Can Could Should
    May Might Will Would How What Why Which Who""".split()
)


@Language.component(COMPONENT_NAME)
def biomed_sentence_segmenter(doc: Doc) -> Doc:
    """Set `is_sent_start` on every token of `doc` from `sentence_starts`."""
    if len(doc) == 0:
        return doc
    arr = doc.to_array([ORTH, SPACY])
    strings = doc.vocab.strings  # token texts without building Token objects (`doc.text` does)
    words = [strings[h] for h in arr[:, 0].tolist()]
    starts = sentence_starts(words, arr[:, 1].astype(bool).tolist())
    values = np.full(len(words), -1, dtype="int64")
    values[starts] = 1
    doc.from_array([SENT_START], values.astype("uint64"))
    return doc


def sentence_starts(words: Sequence[str], spaces: Sequence[bool]) -> list[int]:
    """Indices of the tokens (their texts, and whether a space follows each) that start a sentence.

    Token 0 always starts one (spaCy requires it); no other whitespace token ever does. Only the
    tokens after a candidate end (a token ending in ".", "?", "!" or "…", or a whitespace token) are
    examined, so the cost is a fraction of a pass over the tokens in Python.
    """
    n = len(words)
    if n == 0:
        return []
    starts = [0]
    protected = _bracket_intervals(words)
    candidates = [i for i, w in enumerate(words) if w[-1] in _TERMINAL_CHARS or w.isspace()]
    last = 0
    for k in candidates:
        if k < last:
            continue  # already scanned past it
        # The next token that is neither an attached closer nor whitespace, and the gap before it.
        m = k if words[k].isspace() else k + 1
        if m > k:
            while m < n and words[m] in _CLOSERS and not spaces[m - 1]:
                m += 1
        gap = ""
        while m < n and words[m].isspace():
            gap += words[m]
            m += 1
        if m >= n:
            break
        last = m
        if not (gap or spaces[m - 1]):
            continue
        prev = m - 1
        while prev >= 0 and words[prev].isspace():
            prev -= 1
        if prev < 0:
            continue  # leading whitespace: it belongs to the first sentence
        if _is_boundary(words, spaces, prev, m, gap, protected):
            starts.append(m)
    return starts


def _is_boundary(
    words: Sequence[str], spaces: Sequence[bool], prev: int, j: int, gap: str, protected: list[tuple[int, int]]
) -> bool:
    """Whether token `j` starts a sentence, given the last non-space token before it is `prev`."""
    if gap and _PARAGRAPH_BREAK.search(gap):
        return True
    if _inside(protected, j):
        return False
    # Step back over closing brackets/quotes attached to the sentence-final token.
    k = prev
    while k > 0 and words[k] in _CLOSERS and not spaces[k - 1] and not words[k - 1].isspace():
        k -= 1
    final = words[k]
    if "\n" in gap and final[-1] not in ",;:-–(/&" and _looks_like_start(words, j, strict=False):
        return True
    if all(c in _TERMINAL_CHARS for c in final):
        if final == "." and k > 0 and not spaces[k - 1] and not words[k - 1].isspace():
            # A word the tokenizer split from its period ("approx" "."): look the pair up.
            key = words[k - 1] + "."
            if key in NEVER_FINAL:
                return False
            if key in AMBIGUOUS_FINAL:
                return words[j] in SENTENCE_OPENERS
        return _looks_like_start(words, j, strict=False)
    if final[-1] == "." and len(final) > 1:
        return _after_dotted_word(words, final, j)
    return False


def _after_dotted_word(words: Sequence[str], final: str, j: int) -> bool:
    """Boundary decision before token `j`, after a token `final` that ends with its own period."""
    if final in NEVER_FINAL:
        return False
    nxt = words[j]
    if _is_initial(nxt) or (len(nxt) == 1 and nxt.isupper()):
        return False  # "Feder, J. N.", "Bacon, B. R ."
    if final in AMBIGUOUS_FINAL or _is_initial(final):
        return nxt in SENTENCE_OPENERS
    return _looks_like_start(words, j, strict=True)


def _is_initial(word: str) -> bool:
    """Letters each followed by a period: "E." of "E. coli", "J." of "J. Smith", "G.B." of a name."""
    return len(word) % 2 == 0 and all(word[i].isalpha() and word[i + 1] == "." for i in range(0, len(word), 2))


def _looks_like_start(words: Sequence[str], j: int, strict: bool) -> bool:
    """Whether token `j` can open a sentence; `strict` demands that its first character is a capital."""
    word = words[j]
    first = word[0]
    if strict or first.isupper():
        return first.isupper()
    if word in _OPENERS and j + 1 < len(words) and not words[j + 1].isspace():
        return _looks_like_start(words, j + 1, strict)
    if first in "([" and len(word) > 1:
        # A stereo or isotope prefix glued to a chemical name: "(-)-N-allylnormetazocine", "[3H]".
        return word[1] in "+-±−" or word[1].isupper() or word[1].isdigit()
    if first.isdigit() or "\u0370" <= first <= "\u03ff":
        return True
    return first.islower() and any(c.isupper() or c.isdigit() for c in word)


def _bracket_intervals(words: Sequence[str]) -> list[tuple[int, int]]:
    """Disjoint, sorted (first, last) token ranges strictly inside matched (), [] or {} tokens."""
    spans: list[tuple[int, int]] = []
    stack: list[tuple[str, int]] = []
    for i in [i for i, w in enumerate(words) if w in _BRACKETS]:
        word = words[i]
        if word in _PAIRS:
            opener = _PAIRS[word]
            depth = len(stack) - 1
            while depth >= 0 and stack[depth][0] != opener:
                depth -= 1
            if depth < 0:
                continue  # a closer without opener ("1)" in an enumeration)
            start = stack[depth][1]
            del stack[depth:]
            if 1 < i - start <= _MAX_BRACKET_TOKENS:
                while spans and spans[-1][0] > start:
                    spans.pop()  # nested inside this pair
                spans.append((start + 1, i - 1))
        else:
            stack.append((word, i))
    return spans


def _inside(spans: list[tuple[int, int]], j: int) -> bool:
    """Whether token `j` lies in one of the sorted, disjoint `spans`."""
    i = bisect_right(spans, (j, math.inf)) - 1
    return i >= 0 and spans[i][0] <= j <= spans[i][1]
