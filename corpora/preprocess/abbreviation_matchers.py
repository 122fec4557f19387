"""Array-based stand-ins for the two spaCy `Matcher`s inside scispaCy's abbreviation detector.

Why: spaCy's `Matcher` builds two Python `Token` objects for every token of every document it
scans (`enumerate(doclike)` and `doclike[i]` in `find_matches`), and the detector runs two
matchers per text (the "( ... )" candidates, then the global matcher for the short forms it
found). On the bundled abstracts that made the detector the most expensive step of the whole
pipeline, more than the tokenizer. Both patterns the detector uses only compare token texts
(ORTH), so they can be answered from `doc.to_array(ORTH)` without a single `Token` object.

Each class answers exactly what the `Matcher` it replaces answers, in the same order: a list of
`(match_id, start, end)` tuples (`tests/test_abbreviation_matchers.py` compares them with spaCy's
own `Matcher` on random token sequences and on every bundled passage). The detector's algorithm
(scispaCy's `filter_matches`, `find_abbreviation`, `short_form_filter`) is untouched.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from spacy.attrs import ORTH

if TYPE_CHECKING:
    from spacy.tokens import Doc
    from spacy.vocab import Vocab

Match = tuple[int, int, int]  # match id (string hash), start token, end token (exclusive)


def _orths(doc: Doc) -> np.ndarray:
    from spacy.tokens import Doc

    if not isinstance(doc, Doc):
        raise TypeError(f"these matchers take a spaCy Doc, got {type(doc).__name__}")
    return doc.to_array(ORTH) if len(doc) else np.zeros(0, dtype=np.uint64)


class BracketPairMatcher:
    """The pattern `[{"ORTH": open}, {"OP": "{1,max_inside}"}, {"ORTH": close}]`.

    Every "(" token followed, 1 to `max_inside` tokens later, by a ")" token is a match (the tokens
    between may be anything, brackets included), ordered as spaCy orders them: by end, then by
    start from the latest to the earliest.
    """

    def __init__(
        self, vocab: Vocab, key: str = "parenthesis", max_inside: int = 8, open_text: str = "(", close_text: str = ")"
    ) -> None:
        if max_inside < 1:
            raise ValueError(f"max_inside must be at least 1, got {max_inside}")
        self.vocab = vocab
        self.max_inside = max_inside
        self._key = vocab.strings.add(key)
        self._open = vocab.strings.add(open_text)
        self._close = vocab.strings.add(close_text)

    def __len__(self) -> int:
        return 1

    def __call__(self, doc: Doc) -> list[Match]:
        orths = _orths(doc)
        opens = np.flatnonzero(orths == self._open).tolist()
        if not opens:
            return []
        matches: list[Match] = []
        for close in np.flatnonzero(orths == self._close).tolist():
            first = bisect_left(opens, close - 1 - self.max_inside)
            last = bisect_right(opens, close - 2)
            matches.extend((self._key, start, close + 1) for start in reversed(opens[first:last]))
        return matches


class OrthSequenceMatcher:
    """A `Matcher` restricted to patterns of exact token texts: `[{"ORTH": "IL"}, {"ORTH": "-"}, ...]`.

    Supports what scispaCy's detector calls on its global matcher (`add`, `remove`, `__call__`,
    `vocab`); keys are strings, match ids their hashes in `vocab.strings`. Matches come ordered by
    end, then start, then the order the keys were added; a pattern found twice at the same place
    counts once. A pattern with anything but ORTH is refused (ValueError), never half-matched.
    """

    def __init__(self, vocab: Vocab) -> None:
        self.vocab = vocab
        self._patterns: dict[str, list[tuple[int, ...]]] = {}

    def __len__(self) -> int:
        return len(self._patterns)

    def __contains__(self, key: str) -> bool:
        return key in self._patterns

    def add(self, key: str, patterns: Iterable[Sequence[dict[str, Any]]], **kwargs: Any) -> None:
        if kwargs:
            raise ValueError(f"OrthSequenceMatcher.add supports no options, got {sorted(kwargs)}")
        compiled = []
        for pattern in patterns:
            if not pattern or any(set(spec) != {"ORTH"} or not isinstance(spec["ORTH"], str) for spec in pattern):
                raise ValueError(
                    f"pattern for {key!r} must be a non-empty list of {{'ORTH': text}} dicts, got {pattern!r}"
                )
            compiled.append(tuple(self.vocab.strings.add(spec["ORTH"]) for spec in pattern))
        self.vocab.strings.add(key)
        self._patterns.setdefault(key, []).extend(compiled)

    def remove(self, key: str) -> None:
        if key not in self._patterns:
            raise ValueError(f"no pattern was added under the key {key!r}")
        del self._patterns[key]

    def __call__(self, doc: Doc) -> list[Match]:
        if not self._patterns:
            return []
        orths = _orths(doc)
        found: dict[tuple[int, int, int], int] = {}  # (end, start, key order) -> match id
        for order, (key, patterns) in enumerate(self._patterns.items()):
            match_id = self.vocab.strings[key]
            for pattern in patterns:
                n = len(pattern)
                if n > len(orths):
                    continue
                starts = np.flatnonzero(orths[: len(orths) - n + 1] == pattern[0])
                for k in range(1, n):
                    if not len(starts):
                        break
                    starts = starts[orths[starts + k] == pattern[k]]
                for start in starts.tolist():
                    found[(start + n, start, order)] = match_id
        return [(match_id, start, end) for (end, start, _), match_id in sorted(found.items())]


def use_array_matchers(detector: object) -> bool:
    """Give scispaCy's `AbbreviationDetector` these matchers in place of its spaCy ones.

    The parenthesis pattern is bounded to the 8 tokens that scispaCy's own `filter_matches` keeps
    (its unbounded "( any+ )" pairs every "(" with every later ")": quadratic on long texts).
    Returns False, changing nothing, for a detector without the expected attributes (another
    scispaCy version), which then keeps its own matchers.
    """
    from spacy.matcher import Matcher

    matcher, global_matcher = getattr(detector, "matcher", None), getattr(detector, "global_matcher", None)
    if not isinstance(matcher, Matcher) or not isinstance(global_matcher, Matcher) or len(global_matcher):
        return False
    detector.matcher = BracketPairMatcher(matcher.vocab)
    detector.global_matcher = OrthSequenceMatcher(matcher.vocab)
    return True
