"""Ingest benchmark: our MEDLINE XML reader against pubmed_parser on the same baseline-like file.

Builds a deterministic PubmedArticleSet of N citations (default 30,000, the size of one NLM baseline
file) by replicating the bundled citations of corpora/samples/pubmed/ under new unique PMIDs, gzips
it like a baseline file, then times, each in its own subprocess so peak RSS figures do not mix:

* ours: `corpora.formats.pubmed_xml.read_pubmed_xml` (title, abstract sections, PMID, DOI, PMCID, journal,
  year, language, publication types, MeSH with qualifiers, keywords);
* peer: `pubmed_parser.parse_medline_xml` with `year_info_only=True` (year, like ours),
  `nlm_category=False` (section labels, like ours) and `parse_downto_mesh_subterms=True` (qualifiers,
  like ours). It always extracts title, abstract, PMID, DOI, journal and MeSH; it also parses
  authors, references and grants, which cannot be switched off;
* ours again on a file three times larger, to show that peak RSS does not grow with file size.

Each reader runs --repeat times (interleaved) and the fastest run counts; rates are given per wall
second (ours_per_s, peer_per_s, ratio) and per CPU second of the reading process (ours_per_cpu_s,
peer_per_cpu_s, ratio_cpu), which is steadier on shared cores. Peak RSS is the worker's VmHWM. The
last stdout line is a JSON object with those figures plus peak_rss_mb and peak_rss_mb_3x.

    .venv/bin/python benchmarks/bench_ingest.py                    # 30,000 citations
    .venv/bin/python benchmarks/bench_ingest.py --citations 3000   # quick run while developing
    .venv/bin/python benchmarks/bench_ingest.py --isolation        # cost of reading in a child process
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

from lxml import etree

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "corpora" / "samples" / "pubmed"
WORK = ROOT / "benchmarks" / "_work"
GENERATOR_VERSION = "1"  # bump when the generated content changes, so cached files are rebuilt
FIRST_PMID = 90_000_001

_HEADER = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2024//EN" '
    b'"https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_240101.dtd">\n'
    b"<PubmedArticleSet>\n"
)
_FOOTER = b"</PubmedArticleSet>\n"


def _templates() -> list[bytes]:
    """Each bundled citation as PubmedArticle bytes with a NUL byte where its own PMID goes."""
    files = sorted(p for p in SAMPLES.iterdir() if p.name.endswith((".xml", ".xml.gz")))
    out: list[bytes] = []
    for path in files:
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))
        for child in root:
            if child.tag == "PubmedArticle":
                xml = etree.tostring(child, encoding="utf-8", with_tail=False)
            elif child.tag == "MedlineCitation":  # legacy file: wrap it the way current files do
                cit = etree.tostring(child, encoding="utf-8", with_tail=False)
                pmid = child.findtext("PMID")
                xml = (
                    b"<PubmedArticle>"
                    + cit
                    + b'<PubmedData><ArticleIdList><ArticleId IdType="pubmed">'
                    + pmid.encode()
                    + b"</ArticleId></ArticleIdList></PubmedData></PubmedArticle>"
                )
            else:
                continue
            # replace the citation's own PMID (the first one) and its own pubmed ArticleId (PubmedData,
            # not the references) by a NUL placeholder
            m = re.search(rb"<PMID Version=\"\d+\">(\d+)</PMID>", xml)
            assert m, f"no PMID in a citation of {path}"
            pmid = m.group(1)
            xml = xml[: m.start(1)] + b"\0" + xml[m.end(1) :]
            own_id = b'<ArticleId IdType="pubmed">' + pmid + b"</ArticleId>"
            data_at = xml.find(b"<PubmedData>")
            if data_at >= 0:
                at = xml.find(own_id, data_at)
                ref_at = xml.find(b"<ReferenceList", data_at)
                if at >= 0 and (ref_at < 0 or at < ref_at):
                    xml = xml[:at] + b'<ArticleId IdType="pubmed">\0</ArticleId>' + xml[at + len(own_id) :]
            out.append(xml)
    return out


def build_file(n: int, gz: bool = True) -> Path:
    """Write (or reuse) the benchmark file of `n` citations with PMIDs FIRST_PMID.. FIRST_PMID+n-1."""
    WORK.mkdir(parents=True, exist_ok=True)
    target = WORK / f"medline_bench_v{GENERATOR_VERSION}_{n}.xml{'.gz' if gz else ''}"
    if target.exists():
        return target
    templates = _templates()
    tmp = target.with_name(target.name + ".tmp")
    opener = (lambda p: gzip.open(p, "wb", compresslevel=6)) if gz else (lambda p: open(p, "wb"))
    with opener(tmp) as fh:
        fh.write(_HEADER)
        batch: list[bytes] = []
        for i in range(n):
            pmid = str(FIRST_PMID + i).encode()
            batch.append(templates[i % len(templates)].replace(b"\0", pmid))
            batch.append(b"\n")
            if len(batch) >= 2000:
                fh.write(b"".join(batch))
                batch.clear()
        fh.write(b"".join(batch))
        fh.write(_FOOTER)
    tmp.replace(target)
    return target


def _peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM). Not ru_maxrss: Linux carries that across exec, so a worker
    would inherit the peak of the parent that built the file."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _cpu_with_children() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _read_ours(path: Path) -> tuple[int, int]:
    """Citations and characters read by our reader (the work a benchmark run times)."""
    from corpora.formats.pubmed_xml import read_pubmed_xml
    from corpora.schema import Document

    n = chars = 0
    for rec in read_pubmed_xml(path):
        if isinstance(rec, Document):
            n += 1
            chars += rec.passages[-1].offsets[0][1]
    return n, chars


def worker(kind: str, path: Path) -> dict:
    """Run one reader over `path` in this process; report count, seconds and peak RSS.

    `isolated` is ours as `biomed ingest` runs it: in a forked child that returns only its result
    (`corpora.formats.isolated_read.run_in_child`); its CPU time includes the child's.
    """
    sys.path.insert(0, str(ROOT))
    if kind in ("ours", "isolated"):
        from corpora.formats.isolated_read import run_in_child

        rss_before = _peak_rss_mb()
        t0, c0 = time.perf_counter(), _cpu_with_children()
        n, chars = run_in_child(path, _read_ours, path) if kind == "isolated" else _read_ours(path)
        seconds, cpu = time.perf_counter() - t0, _cpu_with_children() - c0
    else:
        import pubmed_parser
        from pubmed_parser import medline_parser

        from corpora.formats.textio import open_binary

        # pubmed_parser opens every path with gzip.open; let it read a plain file too (--no-gzip)
        class _Gzip:
            open = staticmethod(lambda p, mode="rb": open_binary(p))

        medline_parser.gzip = _Gzip
        rss_before = _peak_rss_mb()
        t0, c0 = time.perf_counter(), time.process_time()
        n = 0
        chars = 0
        for rec in pubmed_parser.parse_medline_xml(
            str(path),
            year_info_only=True,
            nlm_category=False,
            author_list=False,
            reference_list=False,
            parse_downto_mesh_subterms=True,
        ):
            if not rec.get("delete"):
                n += 1
                chars += len(rec["title"]) + len(rec["abstract"])
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "kind": kind,
        "n": n,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "per_s": n / seconds,
        "per_cpu_s": n / cpu,
        "chars": chars,
        "rss_before_mb": rss_before,
        "peak_rss_mb": _peak_rss_mb(),
    }


def run_worker(kind: str, path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", kind, "--path", str(path)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--citations", type=int, default=30000, help="citations in the benchmark file (default 30000)")
    ap.add_argument("--no-gzip", action="store_true", help="write the benchmark file uncompressed")
    ap.add_argument(
        "--repeat", type=int, default=3, help="runs per reader, interleaved; the fastest counts (shared CPUs are noisy)"
    )
    ap.add_argument("--skip-3x", action="store_true", help="skip the 3x-larger memory check")
    ap.add_argument(
        "--isolation",
        action="store_true",
        help="compare ours in-process with ours in a child process (as biomed ingest reads XML) instead of the peer",
    )
    ap.add_argument("--worker", choices=["ours", "peer", "isolated"], help=argparse.SUPPRESS)
    ap.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.path)))
        return

    gz = not args.no_gzip
    t0 = time.perf_counter()
    path = build_file(args.citations, gz)
    size_mb = path.stat().st_size / 1e6
    print(
        f"file: {path} ({size_mb:.1f} MB{' gzip' if gz else ''}, {args.citations} citations; "
        f"ready in {time.perf_counter() - t0:.1f} s)"
    )

    if args.isolation:
        compare_isolation(path, args)
        return
    best: dict[str, dict] = {}
    for _ in range(args.repeat):
        for kind in ("ours", "peer"):
            r = run_worker(kind, path)
            print(
                f"  {kind}: {r['n']} citations in {r['seconds']:.2f} s wall ({r['per_s']:.0f}/s), "
                f"{r['cpu_seconds']:.2f} s CPU ({r['per_cpu_s']:.0f}/s), peak RSS {r['peak_rss_mb']:.0f} MB",
                flush=True,
            )
            if kind not in best or r["seconds"] < best[kind]["seconds"]:
                best[kind] = r
            if kind + "_cpu" not in best or r["cpu_seconds"] < best[kind + "_cpu"]["cpu_seconds"]:
                best[kind + "_cpu"] = r
    ours, peer = best["ours"], best["peer"]
    if ours["n"] != args.citations or peer["n"] != args.citations:
        raise SystemExit(f"citation counts differ: ours {ours['n']}, peer {peer['n']}, file {args.citations}")
    result = {
        "citations": args.citations,
        "gzip": gz,
        "file_mb": round(size_mb, 1),
        "ours_per_s": round(ours["per_s"], 1),
        "peer_per_s": round(peer["per_s"], 1),
        "ratio": round(ours["per_s"] / peer["per_s"], 2),
        "ours_per_cpu_s": round(best["ours_cpu"]["per_cpu_s"], 1),
        "peer_per_cpu_s": round(best["peer_cpu"]["per_cpu_s"], 1),
        "ratio_cpu": round(best["ours_cpu"]["per_cpu_s"] / best["peer_cpu"]["per_cpu_s"], 2),
        "repeat": args.repeat,
        "peak_rss_mb": round(ours["peak_rss_mb"], 1),
        "peer_peak_rss_mb": round(peer["peak_rss_mb"], 1),
    }
    print(
        f"best of {args.repeat}: ours {result['ours_per_s']:.0f}/s, pubmed_parser {result['peer_per_s']:.0f}/s, "
        f"ratio {result['ratio']:.2f} (wall); per CPU second {result['ours_per_cpu_s']:.0f} vs "
        f"{result['peer_per_cpu_s']:.0f}, ratio {result['ratio_cpu']:.2f}"
    )
    print(f"peak RSS: ours {result['peak_rss_mb']:.0f} MB, pubmed_parser {result['peer_peak_rss_mb']:.0f} MB")
    if not args.skip_3x:
        path3 = build_file(3 * args.citations, gz)
        r3 = run_worker("ours", path3)
        if r3["n"] != 3 * args.citations:
            raise SystemExit(f"3x file: read {r3['n']} citations, expected {3 * args.citations}")
        result["citations_3x"] = 3 * args.citations
        result["ours_per_s_3x"] = round(r3["per_s"], 1)
        result["peak_rss_mb_3x"] = round(r3["peak_rss_mb"], 1)
        print(
            f"3x file ({3 * args.citations} citations): ours {r3['per_s']:.0f}/s, peak RSS {r3['peak_rss_mb']:.0f} MB "
            f"(vs {result['peak_rss_mb']:.0f} MB on the 1x file)"
        )
    print(json.dumps(result))


def compare_isolation(path: Path, args: argparse.Namespace) -> None:
    """Ours in-process against ours in a child process, interleaved, best of --repeat each."""
    best: dict[str, dict] = {}
    for _ in range(args.repeat):
        for kind in ("ours", "isolated"):
            r = run_worker(kind, path)
            print(
                f"  {kind}: {r['n']} citations in {r['seconds']:.2f} s wall ({r['per_s']:.0f}/s), "
                f"{r['cpu_seconds']:.2f} s CPU, peak RSS {r['peak_rss_mb']:.0f} MB (parent)",
                flush=True,
            )
            if r["n"] != args.citations:
                raise SystemExit(f"{kind}: read {r['n']} citations, expected {args.citations}")
            if kind not in best or r["seconds"] < best[kind]["seconds"]:
                best[kind] = r
            if kind + "_cpu" not in best or r["cpu_seconds"] < best[kind + "_cpu"]["cpu_seconds"]:
                best[kind + "_cpu"] = r
    result = {
        "citations": args.citations,
        "repeat": args.repeat,
        "in_process_s": round(best["ours"]["seconds"], 2),
        "isolated_s": round(best["isolated"]["seconds"], 2),
        "wall_cost_pct": round(100 * (best["isolated"]["seconds"] / best["ours"]["seconds"] - 1), 1),
        "in_process_cpu_s": round(best["ours_cpu"]["cpu_seconds"], 2),
        "isolated_cpu_s": round(best["isolated_cpu"]["cpu_seconds"], 2),
        "cpu_cost_pct": round(100 * (best["isolated_cpu"]["cpu_seconds"] / best["ours_cpu"]["cpu_seconds"] - 1), 1),
        "parent_peak_rss_mb": round(best["isolated"]["peak_rss_mb"], 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
