"""Where things are, for tests at any depth of the tree."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository checkout
SAMPLES = ROOT / "corpora" / "samples"
