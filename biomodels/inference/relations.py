"""RE prediction over candidate entity pairs, with the input style and candidate rules of training.

What the model was trained with comes from its `biomed.json` (written by `biomodels.training.api`):
`marker_style` (how arguments were marked), `relation_task` (which entity type pairs are
candidates: `chemprot`, `bc5cdr-cid`), `negative_label`, `max_length`. A model trained on masked
sentence files (`marker_style` "masked-tsv") is run with the mask style its tokens show (BioELECTRA
`BC6ENT*` tokens, else BLUE `@CHEMICAL$`) and ChemProt's type pairs, the only masked data the
readers take; a `RelationTask` passed by the caller overrides the recorded one.

Each candidate gets the label of the highest softmax probability and that probability as its score;
candidates predicted negative are dropped by the caller. A candidate whose arguments lie too far
apart for `max_length` gets no feature (`tokenize_re` warns) and is predicted negative.

Tested in `tests/biomodels/inference/test_engine.py`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from biomodels.data.re_candidates import CHEMPROT_TASK, RELATION_TASKS, RelationCandidate, RelationTask
from biomodels.data.re_features import tokenize_re
from biomodels.data.re_marking import BIOELECTRA_MASKS, DEFAULT_TYPE_ALIASES, MARKER_STYLES
from biomodels.inference.runtime import TaskModel, run_batches
from corpora.errors import ModelError

log = logging.getLogger(__name__)

KNOWN_TASKS = RELATION_TASKS


def relation_task_of(task_model: TaskModel, override: RelationTask | None = None) -> RelationTask:
    """The candidate rules the RE model was trained with (see the module docstring)."""
    if override is not None:
        return override
    meta, path = task_model.meta, task_model.path
    pairs = meta.get("type_pairs")
    if pairs:
        return RelationTask(
            str(meta.get("relation_task") or "custom"),
            tuple((str(a), str(b)) for a, b in pairs),
            negative_label=str(meta.get("negative_label") or "false"),
        )
    name = meta.get("relation_task")
    if name:
        if name not in KNOWN_TASKS:
            raise ModelError(
                f"{path}/biomed.json: relation_task {name!r} is not one of {', '.join(KNOWN_TASKS)}; "
                "pass the RelationTask"
            )
        return KNOWN_TASKS[name]
    if meta.get("marker_style") == "masked-tsv" or meta.get("relation_input") == "masked-tsv":
        log.warning(
            "%s was trained on masked sentence files, which record no entity types; using ChemProt's type pairs", path
        )
        return CHEMPROT_TASK
    raise ModelError(
        f"{path}/biomed.json records neither relation_task nor type_pairs: "
        "cannot tell which entity pairs are candidates"
    )


def input_style_of(task_model: TaskModel) -> str:
    """The argument marking to use at inference: the recorded style, or the masks of a masked-TSV model."""
    style = task_model.meta.get("marker_style") or "entity_markers"
    if style == "masked-tsv":
        markers = task_model.meta.get("marker_tokens") or []
        return "bioelectra" if any(m in BIOELECTRA_MASKS for m in markers) else "blue"
    if style not in MARKER_STYLES:
        raise ModelError(
            f"{task_model.path}/biomed.json: marker_style {style!r} is not one of {', '.join(MARKER_STYLES)}"
        )
    return style


class RePredictor:
    """Sequence-classification model over marked candidates; one (label, score) per candidate."""

    def __init__(self, task_model: TaskModel, batch_tokens: int, task: RelationTask | None = None) -> None:
        self.task_model = task_model
        self.labels = task_model.labels
        self.task = relation_task_of(task_model, task)
        self.style = input_style_of(task_model)
        self.negative_label = str(task_model.meta.get("negative_label") or self.task.negative_label)
        if self.negative_label not in self.labels:
            raise ModelError(
                f"{task_model.path}: negative label {self.negative_label!r} is not among the labels {self.labels}"
            )
        self.type_aliases = dict(task_model.meta.get("type_aliases") or DEFAULT_TYPE_ALIASES)
        self.batch_tokens = batch_tokens
        self._check_marker_tokens()
        # inputs longer than max_length are windowed by tokenize_re, never fed whole: silence the
        # tokenizer's "longer than the maximum" warning that would say otherwise
        task_model.tokenizer.model_max_length = 1 << 30

    def _check_marker_tokens(self) -> None:
        vocab = self.task_model.tokenizer.get_vocab()
        missing = [t for t in self.task_model.meta.get("marker_tokens") or [] if t not in vocab]
        if missing:
            raise ModelError(
                f"{self.task_model.path}: the tokenizer lacks the marker tokens {missing} the model was trained with"
            )

    @property
    def annotator(self) -> str:
        return self.task_model.annotator

    @property
    def entity_types(self) -> set[str]:
        return {t for pair in self.task.type_pairs for t in pair}

    def predict(self, candidates: Sequence[RelationCandidate]) -> list[tuple[str, float]]:
        """(label, probability) per candidate; candidates without a feature get (negative, 1.0)."""
        out: list[tuple[str, float]] = [(self.negative_label, 1.0)] * len(candidates)
        if not candidates:
            return out
        tm = self.task_model
        feats = tokenize_re(candidates, tm.tokenizer, None, tm.max_length, self.style, self.type_aliases)
        owners = [f["_candidate_index"] for f in feats]

        def consume(rows: list[int], logits: torch.Tensor) -> None:
            p, ids = torch.softmax(logits, dim=-1).max(dim=-1)
            for r, pi, li in zip(rows, p.cpu().numpy().tolist(), ids.cpu().numpy().tolist()):
                out[owners[r]] = (self.labels[li], float(pi))

        if feats:
            run_batches(tm, [f["input_ids"] for f in feats], self.batch_tokens, consume)
        return out


def type_coverage(
    re_types: set[str], pairs: Sequence[tuple[str, str]], ner_types: Sequence[str]
) -> tuple[list[tuple[str, str]], list[str]]:
    """(pairs the NER types can form, RE entity types the NER model never produces)."""
    have = set(ner_types)
    usable = [(a, b) for a, b in pairs if a in have and b in have]
    return usable, sorted(re_types - have)


__all__ = ["KNOWN_TASKS", "RePredictor", "input_style_of", "relation_task_of", "type_coverage"]
