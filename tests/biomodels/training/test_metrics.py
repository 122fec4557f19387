"""Metrics against hand-computed values (worked out in the comments) and against seqeval itself."""

from __future__ import annotations

import random

import pytest

from biomodels.training.metrics import iob2_entities, ner_metrics, normalize_answer, re_metrics, squad_f1, squad_metrics

# ---------------------------------------------------------------------------------------------- NER


def test_ner_overall_and_per_type_by_hand() -> None:
    gold = [
        ["B-Chem", "I-Chem", "O", "B-Dis", "O"],
        ["B-Dis", "I-Dis", "I-Dis", "O", "B-Chem"],
    ]
    pred = [
        ["B-Chem", "I-Chem", "O", "B-Dis", "I-Dis"],  # Chem(0,2) TP; Dis(3,5) FP, gold Dis(3,4) FN
        ["B-Dis", "I-Dis", "I-Dis", "O", "B-Chem"],  # Dis(0,3) TP; Chem(4,5) TP
    ]
    m = ner_metrics(gold, pred)
    # gold: 4 entities, pred: 4 entities, TP 3 -> P = 3/4, R = 3/4, F1 = 3/4
    assert (m["tp"], m["fp"], m["fn"], m["n_gold"], m["n_pred"]) == (3, 1, 1, 4, 4)
    assert (
        m["precision"] == pytest.approx(0.75) and m["recall"] == pytest.approx(0.75) and m["f1"] == pytest.approx(0.75)
    )
    # Chem: 2 gold, 2 pred, 2 TP -> 1.0; Dis: 2 gold, 2 pred, 1 TP -> P = R = F1 = 1/2
    assert m["per_type"]["Chem"]["f1"] == pytest.approx(1.0)
    assert m["per_type"]["Dis"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "tp": 1, "fp": 1, "fn": 1, "support": 2}
    # 9 of 10 tokens agree; only under token_accuracy, and it is not the F1
    assert m["token_accuracy"] == pytest.approx(0.9)
    assert not any("f1" in k and "token" in k for k in m)


def test_ner_two_tp_one_fp_one_fn() -> None:
    gold = [["B-X", "O", "B-X", "O", "B-Y"]]
    pred = [["B-X", "O", "B-X", "B-Y", "O"]]
    # TP X(0,1), X(2,3); FP Y(3,4); FN Y(4,5) -> P = 2/3, R = 2/3, F1 = 2/3
    m = ner_metrics(gold, pred)
    assert (
        m["precision"] == pytest.approx(2 / 3)
        and m["recall"] == pytest.approx(2 / 3)
        and m["f1"] == pytest.approx(2 / 3)
    )
    # Y: 0 TP, 1 FP, 1 FN -> all 0; X: perfect
    assert m["per_type"]["Y"]["f1"] == 0.0 and m["per_type"]["X"]["f1"] == 1.0


def test_ner_strict_rejects_i_without_b() -> None:
    # IOB2 strict: "I-Dis I-Dis" after O starts no entity, so this prediction has no entity at all
    gold = [["O", "B-Dis", "I-Dis", "O"]]
    pred = [["O", "I-Dis", "I-Dis", "O"]]
    assert iob2_entities(pred[0]) == []
    m = ner_metrics(gold, pred)
    # 0 TP, 0 FP, 1 FN -> P = 0 (no predictions), R = 0, F1 = 0, although 3 of 4 tokens agree
    assert (m["tp"], m["fp"], m["fn"]) == (0, 0, 1)
    assert m["f1"] == 0.0
    assert m["token_accuracy"] == pytest.approx(3 / 4)
    # a type change inside an entity ends it: B-X I-Y is X(0,1) and nothing for I-Y
    assert iob2_entities(["B-X", "I-Y", "I-Y"]) == [("X", 0, 1)]
    # a B- in the middle starts a new entity
    assert iob2_entities(["B-X", "I-X", "B-X", "I-X"]) == [("X", 0, 2), ("X", 2, 4)]


def test_ner_boundary_errors_count_as_fp_and_fn() -> None:
    gold = [["B-Dis", "I-Dis", "I-Dis"]]
    pred = [["B-Dis", "I-Dis", "O"]]
    # strict: partial overlap is 1 FP + 1 FN, P = R = 0
    m = ner_metrics(gold, pred)
    assert (m["tp"], m["fp"], m["fn"], m["f1"]) == (0, 1, 1, 0.0)


def test_ner_matches_seqeval_strict_on_random_sequences() -> None:
    seqeval_metrics = pytest.importorskip("seqeval.metrics")
    from seqeval.scheme import IOB2

    rng = random.Random(7)
    tags = ["O", "O", "O", "B-A", "I-A", "B-B", "I-B"]
    gold = [[rng.choice(tags) for _ in range(rng.randint(1, 12))] for _ in range(300)]
    pred = [[t if rng.random() < 0.7 else rng.choice(tags) for t in s] for s in gold]
    m = ner_metrics(gold, pred)
    kw = {"mode": "strict", "scheme": IOB2}
    assert m["precision"] == pytest.approx(seqeval_metrics.precision_score(gold, pred, **kw))
    assert m["recall"] == pytest.approx(seqeval_metrics.recall_score(gold, pred, **kw))
    assert m["f1"] == pytest.approx(seqeval_metrics.f1_score(gold, pred, **kw))
    report = seqeval_metrics.classification_report(gold, pred, output_dict=True, **kw)
    for t in ("A", "B"):
        assert m["per_type"][t]["f1"] == pytest.approx(report[t]["f1-score"])
        assert m["per_type"][t]["support"] == report[t]["support"]


def test_ner_rejects_mismatched_lengths_and_bad_tags() -> None:
    with pytest.raises(ValueError, match="sentence 0"):
        ner_metrics([["O", "O"]], [["O"]])
    with pytest.raises(ValueError, match="not IOB2"):
        ner_metrics([["O", "X-Dis"]], [["O", "O"]])


# ---------------------------------------------------------------------------------------------- RE

CPR = ["CPR:3", "CPR:4", "CPR:5", "CPR:6", "CPR:9"]


def test_re_negative_class_excluded_differs_from_accuracy() -> None:
    # 8 negatives predicted negative (count nothing), 1 TP CPR:4, 1 FN (CPR:3 -> false), 1 FP (false -> CPR:9)
    gold = ["false"] * 8 + ["CPR:4", "CPR:3", "false"]
    pred = ["false"] * 8 + ["CPR:4", "false", "CPR:9"]
    m = re_metrics(gold, pred, labels=CPR)
    # TP 1, FP 1, FN 1 -> P = 1/2, R = 1/2, F1 = 1/2
    assert (m["tp"], m["fp"], m["fn"]) == (1, 1, 1)
    assert m["f1"] == pytest.approx(0.5)
    # counting "false" as a class would make micro-F1 equal accuracy: 9/11
    assert m["accuracy"] == pytest.approx(9 / 11)
    assert m["f1"] < m["accuracy"]
    with_negative = re_metrics(gold, pred, negative_label="<none>", labels=CPR + ["false"])
    assert with_negative["f1"] == pytest.approx(9 / 11)  # the inflated number NeMo reported


def test_re_confused_positive_is_fp_and_fn() -> None:
    gold = ["CPR:3", "CPR:4", "CPR:4", "false"]
    pred = ["CPR:4", "CPR:4", "false", "false"]
    # pair 1: FP CPR:4 + FN CPR:3; pair 2: TP CPR:4; pair 3: FN CPR:4; pair 4: nothing
    # TP 1, FP 1, FN 2 -> P = 1/2, R = 1/3, F1 = 2*(1/2)*(1/3)/(5/6) = 2/5
    m = re_metrics(gold, pred, labels=CPR)
    assert (m["tp"], m["fp"], m["fn"]) == (1, 1, 2)
    assert (
        m["precision"] == pytest.approx(1 / 2)
        and m["recall"] == pytest.approx(1 / 3)
        and m["f1"] == pytest.approx(2 / 5)
    )
    # CPR:4: TP 1, FP 1, FN 1, support 2 -> P 1/2, R 1/2; CPR:3: TP 0, FN 1, support 1
    assert m["per_class"]["CPR:4"] == {
        "precision": 0.5,
        "recall": 0.5,
        "f1": 0.5,
        "tp": 1,
        "fp": 1,
        "fn": 1,
        "support": 2,
    }
    assert m["per_class"]["CPR:3"]["support"] == 1 and m["per_class"]["CPR:3"]["recall"] == 0.0
    assert m["per_class"]["CPR:9"]["support"] == 0


def test_re_non_evaluated_label_acts_as_negative_and_default_labels() -> None:
    # CPR:10 is not evaluated: gold CPR:10 predicted CPR:10 counts nothing; predicted CPR:10 for CPR:3 is only an FN
    m = re_metrics(["CPR:10", "CPR:3"], ["CPR:10", "CPR:10"], labels=CPR)
    assert (m["tp"], m["fp"], m["fn"]) == (0, 0, 1)
    d = re_metrics(["a", "false"], ["a", "b"])
    assert d["labels"] == ["a", "b"] and (d["tp"], d["fp"], d["fn"]) == (1, 1, 0)
    with pytest.raises(ValueError):
        re_metrics(["a"], ["a"], labels=["a", "false"])


# ---------------------------------------------------------------------------------------------- QA


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("The Cat", "cat"),
        ("a  cat, an  owl; the\tdog!", "cat owl dog"),
        ("theory", "theory"),  # articles only as whole words
        ("beta-2 (AR)", "beta2 ar"),  # punctuation removed without a space
        ("  A  ", ""),
        ("Anne", "anne"),
    ],
)
def test_squad_normalization(raw: str, normalized: str) -> None:
    assert normalize_answer(raw) == normalized


def test_squad_metrics_by_hand() -> None:
    refs = {
        "q1": ["the beta 2-adrenergic receptor"],
        "q2": ["salmeterol", "long-acting salmeterol"],
        "q3": ["asthma"],
        "q4": ["HEK 293 cells"],
    }
    preds = {
        "q1": "Beta 2-adrenergic receptor.",  # normalised equal -> EM 1, F1 1
        # q2 vs "longacting salmeterol": 1 common of 3 pred / 2 gold -> P 1/3 R 1/2 F1 0.4;
        # vs "salmeterol": P 1/3 R 1 F1 0.5 -> max 0.5, EM 0
        "q2": "long acting salmeterol",
        "q3": "chronic asthma",  # P 1/2 R 1 -> F1 2/3, EM 0
        "extra": "ignored",
    }  # q4 unanswered -> 0
    m = squad_metrics(preds, refs)
    assert squad_f1("long acting salmeterol", "long-acting salmeterol") == pytest.approx(0.4)
    assert m["exact_match"] == pytest.approx(100 * 1 / 4)
    assert m["f1"] == pytest.approx(100 * (1 + 0.5 + 2 / 3 + 0) / 4)
    assert (m["total"], m["n_unanswered"], m["n_unknown"]) == (4, 1, 1)


def test_squad_f1_zero_and_empty() -> None:
    assert squad_f1("the", "a") == 0.0  # both normalise to nothing: no common token -> 0, as the official script
    assert squad_f1("receptor", "ligand") == 0.0
