"""The per-run report of an annotated dataset: counts by type, score histograms, example sentences.

Written as `report.md` and `scores.png` in the output folder and published as a Prefect markdown
artifact, for curators who would rather look than read.

Tested in `tests/pipelines/flows/test_annotation_report.py` and `tests/pipelines/flows/test_annotate.py`.
"""

from __future__ import annotations

import html
from collections import Counter
from pathlib import Path
from typing import Any

from corpora.dataset.store import open_dataset


def gather(dataset: str | Path, examples: int = 5) -> dict[str, Any]:
    """Counts and scores of the model-made annotations, plus a few sentences with entities marked."""
    ents: Counter[str] = Counter()
    rels: Counter[str] = Counter()
    ent_scores: dict[str, list[float]] = {}
    rel_scores: dict[str, list[float]] = {}
    shown: list[str] = []
    docs = 0
    for doc in open_dataset(dataset).iter_documents():
        docs += 1
        for e in doc.entities:
            if e.annotator and e.score is not None:
                ents[e.type] += 1
                ent_scores.setdefault(e.type, []).append(e.score)
        for r in doc.relations:
            if r.annotator and r.score is not None:
                rels[r.type] += 1
                rel_scores.setdefault(r.type, []).append(r.score)
        if len(shown) < examples:
            shown.extend(_marked_sentences(doc, examples - len(shown)))
    return {
        "documents": docs,
        "entities": dict(ents),
        "relations": dict(rels),
        "entity_scores": ent_scores,
        "relation_scores": rel_scores,
        "examples": shown,
    }


def _marked_sentences(doc: Any, limit: int) -> list[str]:
    """Sentences with at least one predicted entity, entities shown as [text](Type 0.93)."""
    text = doc.text
    predicted = sorted((e for e in doc.entities if e.annotator), key=lambda e: e.offsets[0][0])
    out = []
    for sent in doc.sentences:
        inside = [e for e in predicted if sent.start <= e.offsets[0][0] and e.offsets[-1][1] <= sent.end]
        if not inside:
            continue
        pieces, cursor = [], sent.start
        for e in inside:
            s, t = e.offsets[0][0], e.offsets[-1][1]
            if s < cursor:
                continue
            pieces.append(text[cursor:s])
            pieces.append(f"[{text[s:t]}]({e.type} {e.score:.2f})")
            cursor = t
        pieces.append(text[cursor : sent.end])
        out.append(f"PMID {doc.document_id}: " + "".join(pieces))
        if len(out) >= limit:
            break
    return out


def plot_scores(stats: dict[str, Any], path: Path) -> Path | None:
    """Histogram of confidence scores per entity and relation type (PNG)."""
    groups = [(f"entity {k}", v) for k, v in stats["entity_scores"].items()] + [
        (f"relation {k}", v) for k, v in stats["relation_scores"].items()
    ]
    if not groups:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(groups), 1, figsize=(6, 1.8 * len(groups) + 0.6), squeeze=False)
    for ax, (name, scores) in zip(axes[:, 0], groups):
        ax.hist(scores, bins=20, range=(0, 1), color="#4477aa")
        ax.set_title(f"{name} (n={len(scores)})", fontsize=9)
        ax.set_xlim(0, 1)
    axes[-1, 0].set_xlabel("confidence score")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def markdown(stats: dict[str, Any], annotators: dict[str, str], png: Path | None) -> str:
    lines = [
        "# Annotation report",
        "",
        f"Documents: {stats['documents']}",
        "",
        "| kind | type | count | mean score |",
        "| --- | --- | --- | --- |",
    ]
    for kind, counts, scores in (
        ("entity", stats["entities"], stats["entity_scores"]),
        ("relation", stats["relations"], stats["relation_scores"]),
    ):
        for t, n in sorted(counts.items()):
            lines.append(f"| {kind} | {t} | {n} | {sum(scores[t]) / len(scores[t]):.3f} |")
    if not stats["entities"] and not stats["relations"]:
        lines.append(
            "| (none) | | 0 | |\n\nThe models found no entities or relations in these documents"
            + (" (the dataset is empty)." if not stats["documents"] else ".")
        )
    lines += ["", "Models: " + ", ".join(f"{k} `{v}`" for k, v in annotators.items())]
    if png is not None:
        lines += ["", f"Score histograms: `{png}`"]
    if stats["examples"]:
        lines += ["", "## Examples", ""] + [f"- {html.escape(s)}" for s in stats["examples"]]
    return "\n".join(lines) + "\n"


def written_outputs(dataset: str | Path) -> str:
    """The report files of an annotated dataset that exist (scores.png is not drawn when no score
    was predicted), for the command's last lines."""
    root = Path(dataset)
    parts = [f"report {root / 'report.md'}"] if (root / "report.md").is_file() else []
    if (root / "scores.png").is_file():
        parts.append(f"score histograms {root / 'scores.png'}")
    else:
        parts.append("no score histograms (nothing was predicted)")
    return ", ".join(parts)


def write_report(dataset: str | Path, annotators: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """Write report.md and scores.png beside the dataset's data/ and return the markdown and stats."""
    root = Path(dataset)
    stats = gather(root)
    png = plot_scores(stats, root / "scores.png")
    if png is None:
        (root / "scores.png").unlink(missing_ok=True)  # an earlier run's histograms would mislead
    text = markdown(stats, annotators, png)
    (root / "report.md").write_text(text, encoding="utf-8")
    return text, stats
