"""Evaluation metrics computed the way the field's reference scripts define them.

- NER: entity-level strict P/R/F1 over IOB2 tags, as seqeval computes with `mode="strict"` and
  `scheme=IOB2` (the CoNLL definition): an entity is a `B-X` followed by `I-X`s; an `I-X` that does not
  continue a `B-X`/`I-X` of the same type starts nothing. Overall scores are micro-averaged.
  Token accuracy is reported only under the key `token_accuracy`, never as an F1 (NeMo's mistake).
- RE: micro P/R/F1 over the positive classes only; the negative class ("false") is excluded, because
  counting it turns micro-F1 into accuracy (NeMo reported 88.6 "F1" for a ~75.6 run).
- QA: SQuAD v1.1 exact match and F1, with the official script's answer normalisation.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Precision, recall, F1 with 0 where a denominator is 0 (seqeval's zero_division=0)."""
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f}


# --------------------------------------------------------------------------------------------- NER


def iob2_entities(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Strict IOB2 entities of one sentence as (type, start, end) with `end` exclusive (word indices).

    Only `B-X I-X*` is an entity; a stray `I-X` (after `O`, or after another type) is not (strict mode).
    """
    entities: list[tuple[str, int, int]] = []
    i, n = 0, len(tags)
    while i < n:
        tag = tags[i]
        if tag.startswith("B-"):
            etype = tag[2:]
            j = i + 1
            while j < n and tags[j] == "I-" + etype:
                j += 1
            entities.append((etype, i, j))
            i = j
        else:
            i += 1
    return entities


def _check_tags(tags: Sequence[str], where: str) -> None:
    for tag in tags:
        if tag != "O" and not (tag[:2] in ("B-", "I-") and len(tag) > 2):
            raise ValueError(f"{where}: tag {tag!r} is not IOB2 (expected 'O', 'B-<type>' or 'I-<type>')")


def ner_metrics(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Entity-level strict P/R/F1 (micro overall, and per type) with the counts behind them.

    Returns keys `precision`, `recall`, `f1`, `tp`, `fp`, `fn`, `n_gold`, `n_pred`, `per_type`
    ({type: {precision, recall, f1, tp, fp, fn, support}} where support is the number of gold
    entities), `n_sentences`, and `token_accuracy` (fraction of tokens whose tag matches; not an F1).
    """
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} sentences but predictions have {len(pred)}")
    gold_set: set[tuple[int, str, int, int]] = set()
    pred_set: set[tuple[int, str, int, int]] = set()
    tokens = correct = 0
    for k, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise ValueError(f"sentence {k}: {len(g)} gold tags but {len(p)} predicted tags")
        _check_tags(g, f"gold sentence {k}")
        _check_tags(p, f"predicted sentence {k}")
        gold_set.update((k, *e) for e in iob2_entities(g))
        pred_set.update((k, *e) for e in iob2_entities(p))
        tokens += len(g)
        correct += sum(a == b for a, b in zip(g, p))
    tp_set = gold_set & pred_set
    types = sorted({e[1] for e in gold_set | pred_set})
    per_type: dict[str, dict[str, Any]] = {}
    for t in types:
        tp = sum(1 for e in tp_set if e[1] == t)
        ng = sum(1 for e in gold_set if e[1] == t)
        npred = sum(1 for e in pred_set if e[1] == t)
        per_type[t] = {**_prf(tp, npred - tp, ng - tp), "tp": tp, "fp": npred - tp, "fn": ng - tp, "support": ng}
    tp, fp, fn = len(tp_set), len(pred_set) - len(tp_set), len(gold_set) - len(tp_set)
    return {
        **_prf(tp, fp, fn),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "n_gold": len(gold_set),
        "n_pred": len(pred_set),
        "per_type": per_type,
        "n_sentences": len(gold),
        "token_accuracy": correct / tokens if tokens else 0.0,
    }


# ---------------------------------------------------------------------------------------------- RE


def re_metrics(
    gold: Sequence[str],
    pred: Sequence[str],
    negative_label: str = "false",
    labels: Iterable[str] | None = None,
) -> dict[str, Any]:
    """Micro P/R/F1 over the positive relation classes; the negative class never counts.

    `labels` are the positive classes evaluated (ChemProt: CPR:3, CPR:4, CPR:5, CPR:6, CPR:9); by
    default every label seen other than `negative_label`. A label outside `labels` (a non-evaluated
    group such as CPR:10) is treated like the negative class. Per pair (gold g, predicted p):
    g == p positive is a TP; otherwise a positive p is an FP of p and a positive g an FN of g (so a
    positive predicted as another positive is both). Also returns `accuracy` over all pairs,
    negative class included, under its own name: it is not the F1.
    """
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} labels but predictions have {len(pred)}")
    if labels is None:
        positive = sorted((set(gold) | set(pred)) - {negative_label})
    else:
        positive = list(dict.fromkeys(labels))
        if negative_label in positive:
            raise ValueError(f"negative label {negative_label!r} must not be among the evaluated labels")
    pos = set(positive)
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    support: Counter[str] = Counter()
    for g, p in zip(gold, pred):
        if g in pos:
            support[g] += 1
        if g == p and g in pos:
            tp[g] += 1
            continue
        if p in pos:
            fp[p] += 1
        if g in pos:
            fn[g] += 1
    per_class = {
        c: {**_prf(tp[c], fp[c], fn[c]), "tp": tp[c], "fp": fp[c], "fn": fn[c], "support": support[c]} for c in positive
    }
    TP, FP, FN = sum(tp.values()), sum(fp.values()), sum(fn.values())
    return {
        **_prf(TP, FP, FN),
        "tp": TP,
        "fp": FP,
        "fn": FN,
        "per_class": per_class,
        "labels": positive,
        "negative_label": negative_label,
        "n": len(gold),
        "accuracy": sum(g == p for g, p in zip(gold, pred)) / len(gold) if gold else 0.0,
    }


# ---------------------------------------------------------------------------------------------- QA

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 normalisation: lower case, drop ASCII punctuation, drop articles, squash spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def squad_exact(prediction: str, truth: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(truth)


def squad_f1(prediction: str, truth: str) -> float:
    """Bag-of-tokens F1 between normalised answers (0 when they share no token)."""
    pred_tokens = normalize_answer(prediction).split()
    true_tokens = normalize_answer(truth).split()
    same = sum((Counter(pred_tokens) & Counter(true_tokens)).values())
    if same == 0:
        return 0.0
    p = same / len(pred_tokens)
    r = same / len(true_tokens)
    return 2 * p * r / (p + r)


def squad_metrics(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """Exact match and F1 in percent, each the max over a question's gold answers, averaged over
    every referenced question (an unanswered question scores 0, as in the official script;
    predictions for unknown ids are ignored and counted under `n_unknown`)."""
    em = f1 = 0.0
    unanswered = 0
    for qid, answers in references.items():
        if qid not in predictions:
            unanswered += 1
            continue
        if not answers:
            raise ValueError(f"question {qid!r} has no gold answer")
        pred = predictions[qid]
        em += max(float(squad_exact(pred, a)) for a in answers)
        f1 += max(squad_f1(pred, a) for a in answers)
    total = len(references)
    return {
        "exact_match": 100.0 * em / total if total else 0.0,
        "f1": 100.0 * f1 / total if total else 0.0,
        "total": total,
        "n_unanswered": unanswered,
        "n_unknown": sum(1 for q in predictions if q not in references),
    }
