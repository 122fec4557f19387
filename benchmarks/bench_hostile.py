"""Hostile inputs of issue 14 (reader side): what each reader does with them, how long it takes, how
much memory it uses.

Each case is built under benchmarks/_work/hostile/ (the 2 GiB ones as ~2 MB gzip files of one
repeated member), then read by the format's reader in its own subprocess, under an address-space
cap (--cap-gb, default 4) so that a reader that would take 6 GB fails with MemoryError instead of
taking the machine. The row gives the outcome (records read and the start of the first text, or
the error, or the signal that killed it), the wall time and the peak RSS of that subprocess (GNU time).

    .venv/bin/python benchmarks/bench_hostile.py                  # the readers of this checkout
    .venv/bin/python benchmarks/bench_hostile.py --tree /tmp/old  # another tree (git archive <commit> corpora)
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "_work" / "hostile"
MIB = 1 << 20

PUBMED_HEAD = b"<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>1</PMID><Article>"
PUBMED_TAIL = b"</Article></MedlineCitation></PubmedArticle></PubmedArticleSet>"
BIOC_HEAD = b"<collection><source/><date/><key/><document><id>1</id><passage><offset>0</offset>"
BIOC_TAIL = b"</passage></document></collection>"
ENTITY = b'<!DOCTYPE %s [<!ENTITY co "X">]>'


def _gzip(path: Path, parts: list) -> None:
    """Parts are bytes, or (byte, MiB) for that many MiB of one byte (one member written n times)."""
    with open(path, "wb") as fh:
        for part in parts:
            if isinstance(part, tuple):
                member = gzip.compress(part[0] * MIB, compresslevel=9, mtime=0)
                for _ in range(part[1]):
                    fh.write(member)
            else:
                fh.write(gzip.compress(part, mtime=0))


def _doc(passage: dict) -> dict:
    return {"id": "d1", "passages": [passage]}


def build() -> list[tuple[str, str, str, Path]]:
    """(case, module, reader function, file) for every case, built if missing."""
    WORK.mkdir(parents=True, exist_ok=True)
    cases: list[tuple[str, str, str, str, object]] = [
        (
            "PubMed: 2 GiB attribute (2 MB .xml.gz)",
            "pubmed_xml",
            "read_pubmed_xml",
            "pubmed_bomb.xml.gz",
            [
                PUBMED_HEAD + b'<Abstract><AbstractText Label="',
                (b"A", 2048),
                b'">x</AbstractText></Abstract>' + PUBMED_TAIL,
            ],
        ),
        (
            "BioC XML: 2 GiB attribute (2 MB .xml.gz)",
            "bioc_xml",
            "read_bioc_xml",
            "bioc_bomb.xml.gz",
            [BIOC_HEAD + b'<infon key="', (b"A", 2048), b'">v</infon>' + BIOC_TAIL],
        ),
        (
            "DDI XML: 2 GiB attribute (2 MB .xml.gz)",
            "ddi",
            "read_ddi",
            "ddi_bomb.xml.gz",
            [b'<document id="d"><sentence id="d.s0" text="', (b"A", 2048), b'"></sentence></document>'],
        ),
        (
            "PubMed: 50 MB abstract (plain XML)",
            "pubmed_xml",
            "read_pubmed_xml",
            "pubmed_50mb.xml",
            PUBMED_HEAD
            + b"<ArticleTitle>T</ArticleTitle><Abstract><AbstractText>"
            + b"word " * 10_000_000
            + b"</AbstractText></Abstract>"
            + PUBMED_TAIL,
        ),
        (
            "BioC XML: passage offset 10^10 (270 B)",
            "bioc_xml",
            "read_bioc_xml",
            "bioc_offset.xml",
            b"<collection><source/><date/><key/><document><id>d1</id><passage><offset>10000000000</offset>"
            b"<text>x</text></passage></document></collection>",
        ),
        (
            "BioC JSON: passage offset 10^10 (90 B)",
            "bioc_json",
            "read_bioc_json",
            "bioc_offset.json",
            json.dumps([_doc({"offset": 10**10, "text": "x"})]).encode(),
        ),
        (
            "PubTator: one 2 GiB line (2 MB .gz)",
            "pubtator",
            "read_pubtator",
            "pubtator_line.txt.gz",
            [b"1|t|", (b"E", 2048), b"\n"],
        ),
        (
            "CoNLL: one 2 GiB line (2 MB .gz)",
            "conll",
            "read_conll",
            "conll_line.tsv.gz",
            [b"tok\t", (b"E", 2048), b"\n"],
        ),
        (
            "BioC JSON lines: one 2 GiB line (2 MB .gz)",
            "bioc_json",
            "read_bioc_json",
            "bioc_line.jsonl.gz",
            [b'{"id": "d", "passages": [{"offset": 0, "text": "', (b"F", 2048), b'"}]}\n'],
        ),
        (
            "BioC XML: custom entity in <text>",
            "bioc_xml",
            "read_bioc_xml",
            "bioc_entity.xml",
            ENTITY % b"collection" + BIOC_HEAD + b"<text>Aspirin &co; helps.</text>" + BIOC_TAIL,
        ),
        (
            "PubMed: custom entity in the title",
            "pubmed_xml",
            "read_pubmed_xml",
            "pubmed_entity.xml",
            ENTITY % b"PubmedArticleSet"
            + PUBMED_HEAD
            + b"<ArticleTitle>Aspirin &co; helps.</ArticleTitle>"
            + PUBMED_TAIL,
        ),
        ("CoNLL: last line cut (B-Dis)", "conll", "read_conll", "conll_cut.tsv", b"Aspirin\tB-Chemical\nfever\tB-Dis"),
        (
            "BioC JSON: lone surrogate",
            "bioc_json",
            "read_bioc_json",
            "bioc_surrogate.json",
            json.dumps([_doc({"offset": 0, "text": "a\ud800b"})]).encode(),
        ),
        (
            "BioC JSON: 10,000-deep nesting",
            "bioc_json",
            "read_bioc_json",
            "bioc_deep.json",
            b'[{"id": "d", "passages": [], "infons": {"k": ' + b"[" * 10_000 + b"]" * 10_000 + b"}}]",
        ),
        (
            'BioC JSON: "text": 123',
            "bioc_json",
            "read_bioc_json",
            "bioc_int_text.json",
            json.dumps([_doc({"offset": 0, "text": 123})]).encode(),
        ),
    ]
    out = []
    for case, module, func, name, content in cases:
        path = WORK / name
        if not path.exists():
            if isinstance(content, list):
                _gzip(path, content)
            else:
                path.write_bytes(content)  # type: ignore[arg-type]
        out.append((case, module, func, path))
    return out


def run_one(module: str, func: str, path: Path) -> None:
    """In the subprocess: read `path`, print one JSON line (outcome and peak RSS)."""
    import importlib

    reader = getattr(importlib.import_module(f"corpora.formats.{module}"), func)
    try:
        records = list(reader(path))
        first = next((r for r in records if hasattr(r, "passages")), None)
        text = first.text[:40] if first is not None else ""
        outcome = f"read {len(records)} record(s), text {text!r}"
    except MemoryError as exc:
        outcome = f"MemoryError({str(exc)!r})"
    except RecursionError:
        outcome = "RecursionError"
    except Exception as exc:
        outcome = f"{type(exc).__name__}: {str(exc).replace(str(path), '<file>')}"
    with open("/proc/self/status") as fh:
        rss = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024
    print(json.dumps({"outcome": outcome, "peak_rss_mb": round(rss)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--tree", type=Path, default=ROOT, help="the folder holding corpora/ to run (default: this checkout)"
    )
    ap.add_argument("--cap-gb", type=float, default=4.0, help="address-space cap of each reading process")
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--only", help="run the cases whose name contains this text")
    ap.add_argument("--run", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run:
        run_one(args.run[0], args.run[1], Path(args.run[2]))
        return
    cap = int(args.cap_gb * (1 << 30))
    env = dict(os.environ, PYTHONPATH=str(args.tree.resolve()), PYTHONFAULTHANDLER="")

    def limit() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    rows = []
    for case, module, func, path in build():
        if args.only and args.only not in case:
            continue
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            ["/usr/bin/time", "-f", "HOSTILE-RSS %M", sys.executable, __file__, "--run", module, func, str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=str(args.tree.resolve()),
            preexec_fn=limit,
        )
        timer = threading.Timer(args.timeout, proc.kill)
        timer.start()
        out, err = proc.communicate()
        timer.cancel()
        seconds = time.perf_counter() - t0
        rss_kb = [int(line.split()[1]) for line in err.splitlines() if line.startswith("HOSTILE-RSS ")]
        rss = round(rss_kb[-1] / 1024) if rss_kb else None
        signalled = [line for line in err.splitlines() if line.startswith("Command terminated by signal")]
        lines = out.strip().splitlines()
        if signalled:
            sig = signal.Signals(int(signalled[-1].split()[-1])).name
            result = {"outcome": f"killed by {sig}", "peak_rss_mb": rss}
        elif lines:
            result = json.loads(lines[-1])
        else:
            result = {"outcome": err.strip()[-300:], "peak_rss_mb": rss}
        row = {"case": case, "seconds": round(seconds, 2), **result}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n| input | outcome | time | peak RSS |\n| --- | --- | --- | --- |")
    for r in rows:
        rss = f"{r['peak_rss_mb']} MB" if r["peak_rss_mb"] is not None else "-"
        print(f"| {r['case']} | {r['outcome'][:160]} | {r['seconds']:.2f} s | {rss} |")


if __name__ == "__main__":
    main()
