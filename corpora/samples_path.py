"""Where the bundled samples are (inside the installed `corpora` package).

Tested in `tests/pipelines/cli/test_run.py`.
"""

from __future__ import annotations

from pathlib import Path

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"


def sample(relative: str) -> Path:
    """Path of one bundled sample file, e.g. `sample("pubmed/pubmed4.xml")`."""
    path = SAMPLES_DIR / relative
    if not path.exists():
        raise FileNotFoundError(f"no bundled sample {relative!r} under {SAMPLES_DIR}")
    return path
