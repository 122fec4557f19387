"""Run a task model over features and score its predictions the way the field's reference scripts define it
(entity-level strict NER, positive-class micro RE, SQuAD QA; `biomodels.training.metrics`).

One path for the dev evaluation inside training (the Trainer's `eval_fn`) and for `biomed evaluate`,
so the F1 that picks the best checkpoint is the F1 a user later measures:

- NER: the model's tag for each word is its first subword's argmax in the window that owns the word
  (`merge_ner_predictions`), taken as is (no IOB2 repair), scored entity-level strict IOB2.
- RE: one label per candidate; a candidate that got no feature (arguments too far apart for
  max_length) is predicted negative, so it still counts as a false negative when it is gold positive.
  Micro P/R/F1 over the positive labels the model knows; the negative label never counts.
- QA: best span over all windows (`postprocess_qa`), SQuAD v1.1 EM/F1.

Tested in `tests/biomodels/training/test_api.py`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from biomodels.data.batching import PaddingCollator
from biomodels.data.ner import merge_ner_predictions
from biomodels.data.qa import postprocess_qa
from biomodels.data.re_features import missing_candidates
from biomodels.training.metrics import ner_metrics, re_metrics, squad_metrics

_MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass
class EvalSet:
    """Examples with gold answers, their features, and what is needed to score predictions."""

    task: str
    examples: Sequence[Any]
    features: list[dict[str, Any]]
    labels: list[str] | None = None  # id order (NER, RE)
    negative_label: str = "false"
    n_best: int = 20
    max_answer_length: int = 30


def _batches(features: Sequence[Mapping[str, Any]], batch_size: int) -> Iterator[list[int]]:
    """Feature indices in batches of similar length (longest first), so padding stays small."""
    order = sorted(range(len(features)), key=lambda i: -len(features[i]["input_ids"]))
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def _trim(name: str, array: np.ndarray, row: int, n: int) -> np.ndarray:
    """One feature's row, without padding positions (sequence-level logits have none)."""
    if name == "logits" and array.ndim == 2:
        return array[row]
    return array[row, :n]


@torch.no_grad()
def forward_features(
    model: torch.nn.Module, features: Sequence[Mapping[str, Any]], pad_id: int, batch_size: int = 64
) -> list[dict[str, np.ndarray]]:
    """Per feature, the model's float32 outputs trimmed to the feature's length (`logits` for
    classification; `start_logits`/`end_logits` for QA). The model is put in eval mode."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    collate = PaddingCollator(pad_id)
    out: list[dict[str, np.ndarray] | None] = [None] * len(features)
    try:
        for idx in _batches(features, batch_size):
            batch = collate([{k: features[i][k] for k in _MODEL_INPUTS if k in features[i]} for i in idx])
            result = model(**{k: v.to(device) for k, v in batch.items()})
            names = [n for n in ("logits", "start_logits", "end_logits") if getattr(result, n, None) is not None]
            arrays = {n: getattr(result, n).float().cpu().numpy() for n in names}
            for row, i in enumerate(idx):
                n = len(features[i]["input_ids"])
                out[i] = {name: _trim(name, a, row, n) for name, a in arrays.items()}
    finally:
        model.train(was_training)
    return out  # type: ignore[return-value]


def predict(evalset: EvalSet, model: torch.nn.Module, pad_id: int, batch_size: int = 64) -> Any:
    """NER: tags per example; RE: a label per example; QA: {question id: answer text}."""
    outputs = forward_features(model, evalset.features, pad_id, batch_size)
    if evalset.task == "ner":
        assert evalset.labels is not None
        return merge_ner_predictions(
            evalset.features, [o["logits"] for o in outputs], list(evalset.examples), evalset.labels, repair=False
        )
    if evalset.task == "re":
        assert evalset.labels is not None
        labels = [evalset.negative_label] * len(evalset.examples)
        for feat, o in zip(evalset.features, outputs):
            labels[feat["_candidate_index"]] = evalset.labels[int(np.argmax(o["logits"]))]
        return labels
    if evalset.task == "qa":
        starts = [o["start_logits"] for o in outputs]
        ends = [o["end_logits"] for o in outputs]
        return postprocess_qa(
            evalset.features, starts, ends, list(evalset.examples), evalset.n_best, evalset.max_answer_length
        )
    raise ValueError(f"unknown task {evalset.task!r}")


def score(evalset: EvalSet, predictions: Any) -> dict[str, Any]:
    """Metrics of `predictions` (from `predict`) against the gold answers of `evalset`."""
    if evalset.task == "ner":
        gold = [ex.tags for ex in evalset.examples]
        return ner_metrics(gold, predictions)
    if evalset.task == "re":
        assert evalset.labels is not None
        gold = [ex.label for ex in evalset.examples]
        positives = [lab for lab in evalset.labels if lab != evalset.negative_label]
        metrics = re_metrics(gold, predictions, evalset.negative_label, labels=positives)
        metrics["unfit_candidates"] = len(missing_candidates(evalset.features, len(evalset.examples)))
        return metrics
    if evalset.task == "qa":
        refs = {ex.id: [a["text"] for a in ex.answers] for ex in evalset.examples if ex.answers}
        return squad_metrics(predictions, refs)
    raise ValueError(f"unknown task {evalset.task!r}")


def headline(task: str, metrics: Mapping[str, Any]) -> dict[str, float]:
    """The flat numbers a training run tracks (the Trainer selects on `f1`)."""
    if task == "qa":
        return {"f1": float(metrics["f1"]), "exact_match": float(metrics["exact_match"])}
    return {k: float(metrics[k]) for k in ("f1", "precision", "recall")}


def make_eval_fn(evalset: EvalSet, pad_id: int, batch_size: int):
    """The Trainer's `eval_fn`: predictions, metrics, and the headline numbers."""

    def eval_fn(model: torch.nn.Module) -> dict[str, float]:
        return headline(evalset.task, score(evalset, predict(evalset, model, pad_id, batch_size)))

    return eval_fn


__all__ = ["EvalSet", "forward_features", "headline", "make_eval_fn", "predict", "score"]
