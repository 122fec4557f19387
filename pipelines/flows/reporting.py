"""Run summaries: totals over shard reports, a printable text, and Prefect artifacts.

Tested in `tests/pipelines/flows/test_ingest.py`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RunSummary:
    """What one flow run did, per input file and in total."""

    flow: str
    out_dir: str
    reports: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.reports if r["status"] == "failed"]

    @property
    def written(self) -> list[dict[str, Any]]:
        return [r for r in self.reports if r["status"] == "written"]

    @property
    def skipped(self) -> list[dict[str, Any]]:
        return [r for r in self.reports if r["status"] == "skipped"]

    @property
    def synced(self) -> list[dict[str, Any]]:
        """Derived shards that only dropped the documents their source lost (not redone)."""
        return [r for r in self.reports if r["status"] == "synced"]

    def totals(self) -> dict[str, Any]:
        ok = [r for r in self.reports if r["status"] != "failed"]
        ents: Counter[str] = Counter()
        rels: Counter[str] = Counter()
        for r in ok:
            ents.update(r.get("entity_types", {}))
            rels.update(r.get("relation_types", {}))
        return {
            "files": len(self.reports),
            "written": len(self.written),
            "skipped": len(self.skipped),
            "synced": len(self.synced),
            "failed": len(self.failed),
            "documents": sum(r.get("documents", 0) for r in ok),
            "passages": sum(r.get("passages", 0) for r in ok),
            "entities": dict(sorted(ents.items())),
            "relations": dict(sorted(rels.items())),
            "deletions": sum(r.get("deletions", 0) for r in ok),
        }

    def table_rows(self) -> list[dict[str, Any]]:
        """One row per file for the Prefect table artifact."""
        rows = []
        for r in self.reports:
            rows.append(
                {
                    "file": r["path"],
                    "status": r["status"],
                    "format": r.get("format", ""),
                    "documents": r.get("documents", 0),
                    "passages": r.get("passages", 0),
                    "entities": ", ".join(f"{k}={v}" for k, v in r.get("entity_types", {}).items()),
                    "relations": ", ".join(f"{k}={v}" for k, v in r.get("relation_types", {}).items()),
                    "deletions": r.get("deletions", 0),
                    "error": r.get("error", ""),
                }
            )
        return rows

    def text(self, failures: bool = True) -> str:
        """The run's totals; with `failures`, each failed input's error too (the CLI prints those on
        stderr instead, once)."""
        t = self.totals()
        lines = [
            f"{self.flow}: {t['files']} file(s): {t['written']} written, {t['skipped']} unchanged (skipped), "
            + (f"{t['synced']} synced (upstream removals applied), " if t["synced"] else "")
            + f"{t['failed']} failed",
            f"dataset: {self.out_dir}",
            f"documents: {t['documents']}  passages: {t['passages']}  deletions applied: {t['deletions']}",
        ]
        if t["entities"]:
            lines.append("entities: " + ", ".join(f"{k or '(untyped)'} {v}" for k, v in t["entities"].items()))
        if t["relations"]:
            lines.append("relations: " + ", ".join(f"{k or '(untyped)'} {v}" for k, v in t["relations"].items()))
        for key, value in self.extra.items():
            lines.append(f"{key}: {value}")
        if self.failed and failures:
            lines.append("failed files:")
            lines.extend(f"  {r['error']}" for r in self.failed)
        return "\n".join(lines)


def publish_table(summary: RunSummary, key: str) -> None:
    """A Prefect table artifact (keys: lowercase letters, digits, dashes)."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    create_table_artifact(table=summary.table_rows(), key=key, description=f"{summary.flow} per file")
    create_markdown_artifact(
        markdown="```\n" + summary.text() + "\n```", key=f"{key}-summary", description=f"{summary.flow} totals"
    )
