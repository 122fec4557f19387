"""Extractive QA (SQuAD v1.1 style): read the JSON, make windowed features, map logits back to text.

`tokenize_qa` pairs the question with windows of the context (`doc_stride` subwords of overlap
between consecutive windows, the question repeated in each). The training target of a window is the
first gold answer's first and last subword when the whole answer lies inside the window, otherwise
start = end = the [CLS] position, as HuggingFace's `run_qa.py` does. `_offset_mapping` keeps, per
position, the character span in the context (None for question and special tokens), so
`postprocess_qa` can return the exact context substring of the best span over all windows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from corpora.errors import ConfigError, MalformedInputError, ModelError
from corpora.formats.textio import read_text


@dataclass
class QAExample:
    id: str
    question: str
    context: str
    answers: list[dict[str, Any]] = field(default_factory=list)  # [{"text": str, "answer_start": int}]
    title: str = ""


def read_squad(path: str | Path) -> list[QAExample]:
    """Examples of a SQuAD v1.1 JSON file (`{"data": [{"title", "paragraphs": [{"context", "qas"}]}]}`).

    Every answer must be a string found at `answer_start` in its context; a missing field, a bad
    answer or a repeated question id raises MalformedInputError naming the file and question id.
    """
    p = Path(path)
    try:
        data = json.loads(read_text(p))
    except json.JSONDecodeError as exc:
        raise MalformedInputError(p, f"not valid JSON ({exc.msg})", line=exc.lineno) from exc
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise MalformedInputError(p, 'expected a JSON object with a "data" list (SQuAD v1.1)')
    examples: list[QAExample] = []
    seen: set[str] = set()
    for ai, article in enumerate(data["data"]):
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            raise MalformedInputError(p, f'article {ai} has no "paragraphs" list')
        title = str(article.get("title", ""))
        for pi, para in enumerate(article["paragraphs"]):
            context = para.get("context") if isinstance(para, dict) else None
            if not isinstance(context, str) or not isinstance(para.get("qas"), list):
                raise MalformedInputError(p, f'article {ai} paragraph {pi} needs a "context" string and a "qas" list')
            for qa in para["qas"]:
                examples.append(_question(p, qa, context, title, seen))
    if not examples:
        raise MalformedInputError(p, "no questions")
    return examples


def _question(p: Path, qa: Any, context: str, title: str, seen: set[str]) -> QAExample:
    qid = qa.get("id") if isinstance(qa, dict) else None
    if not isinstance(qid, str) or not qid:
        raise MalformedInputError(p, f"a question has no id: {str(qa)[:80]}")
    if qid in seen:
        raise MalformedInputError(p, "question id repeats", record=qid)
    seen.add(qid)
    question = qa.get("question")
    if not isinstance(question, str) or not question.strip():
        raise MalformedInputError(p, 'missing or empty "question"', record=qid)
    answers = qa.get("answers")
    if not isinstance(answers, list):
        raise MalformedInputError(p, 'missing "answers" list', record=qid)
    checked = []
    for k, ans in enumerate(answers):
        text = ans.get("text") if isinstance(ans, dict) else None
        start = ans.get("answer_start") if isinstance(ans, dict) else None
        if not isinstance(text, str) or not text or not isinstance(start, int) or isinstance(start, bool):
            raise MalformedInputError(
                p, f'answer {k} needs a non-empty "text" and an integer "answer_start"', record=qid
            )
        found = context[start : start + len(text)]
        if found != text:
            raise MalformedInputError(
                p, f"answer {k} {text!r} is not at answer_start {start} (context has {found!r})", record=qid
            )
        checked.append({"text": text, "answer_start": start})
    return QAExample(qid, question, context, checked, title)


def tokenize_qa(
    examples: Sequence[QAExample],
    tokenizer: Any,
    max_length: int = 384,
    doc_stride: int = 128,
) -> list[dict[str, Any]]:
    """Windowed question/context features (see the module docstring). Examples without answers get
    no `start_positions`/`end_positions` (inference)."""
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError("a fast (Rust `tokenizers`) tokenizer is required: offsets come from it")
    if getattr(tokenizer, "padding_side", "right") != "right":
        raise ConfigError("tokenize_qa expects the question first (a right-padding tokenizer)")
    n_special = tokenizer.num_special_tokens_to_add(pair=True)
    features: list[dict[str, Any]] = []
    for ei, ex in enumerate(examples):
        question = ex.question.lstrip()
        q_len = len(tokenizer(question, add_special_tokens=False)["input_ids"])
        room = max_length - q_len - n_special
        if room <= doc_stride:
            raise ConfigError(
                f"question {ex.id}: {q_len} question subwords leave {room} for the context, "
                f"not more than doc_stride {doc_stride}; raise max_length or lower doc_stride"
            )
        enc = tokenizer(
            question,
            ex.context,
            truncation="only_second",
            max_length=max_length,
            stride=doc_stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding=False,
        )
        for w in range(len(enc["input_ids"])):
            ids = enc["input_ids"][w]
            seq_ids = enc.sequence_ids(w)
            offsets = [tuple(o) if s == 1 else None for o, s in zip(enc["offset_mapping"][w], seq_ids)]
            feat: dict[str, Any] = {
                "input_ids": list(ids),
                "attention_mask": list(enc["attention_mask"][w]),
                "token_type_ids": list(enc["token_type_ids"][w]) if "token_type_ids" in enc else [0] * len(ids),
                "_example_index": ei,
                "_example_id": ex.id,
                "_offset_mapping": offsets,
            }
            if ex.answers:
                feat["start_positions"], feat["end_positions"] = _answer_positions(
                    ids, offsets, ex.answers[0], tokenizer
                )
            features.append(feat)
    return features


def _answer_positions(
    ids: Sequence[int], offsets: Sequence[tuple[int, int] | None], answer: Mapping[str, Any], tokenizer: Any
) -> tuple[int, int]:
    cls = ids.index(tokenizer.cls_token_id) if tokenizer.cls_token_id in ids else 0
    a_start = answer["answer_start"]
    a_end = a_start + len(answer["text"])
    ctx = [i for i, o in enumerate(offsets) if o is not None]
    if not ctx or offsets[ctx[0]][0] > a_start or offsets[ctx[-1]][1] < a_end:  # type: ignore[index]
        return cls, cls
    start = next(i for i in ctx if offsets[i][1] > a_start)  # type: ignore[index]
    end = next(i for i in reversed(ctx) if offsets[i][0] < a_end)  # type: ignore[index]
    return start, end


def _rows(x: Any) -> list[np.ndarray]:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return [np.asarray(r, dtype=np.float64) for r in x]


def postprocess_qa(
    features: Sequence[Mapping[str, Any]],
    start_logits: Any,
    end_logits: Any,
    examples: Sequence[QAExample],
    n_best: int = 20,
    max_answer_length: int = 30,
) -> dict[str, str]:
    """Best answer text per question id: over all windows, the top `n_best` start and end positions
    inside the context, end >= start, at most `max_answer_length` subwords; score = start + end
    logit. The text is the exact context substring; "" when no valid span exists."""
    starts, ends = _rows(start_logits), _rows(end_logits)
    if not len(starts) == len(ends) == len(features):
        raise ValueError(f"{len(starts)} start rows and {len(ends)} end rows for {len(features)} features")
    best: dict[int, tuple[float, int, int]] = {}
    for feat, s_log, e_log in zip(features, starts, ends):
        offsets = feat["_offset_mapping"]
        n = len(offsets)
        s_log, e_log = s_log[:n], e_log[:n]
        ei = feat["_example_index"]
        top_s = np.argsort(s_log)[::-1][:n_best]
        top_e = np.argsort(e_log)[::-1][:n_best]
        for s in top_s:
            if offsets[s] is None:
                continue
            for e in top_e:
                if offsets[e] is None or e < s or e - s + 1 > max_answer_length:
                    continue
                score = float(s_log[s] + e_log[e])
                if ei not in best or score > best[ei][0]:
                    best[ei] = (score, offsets[s][0], offsets[e][1])
    out: dict[str, str] = {}
    for ei, ex in enumerate(examples):
        if ei in best:
            _, a, b = best[ei]
            out[ex.id] = ex.context[a:b]
        else:
            out[ex.id] = ""
    return out


__all__ = ["QAExample", "read_squad", "tokenize_qa", "postprocess_qa"]
