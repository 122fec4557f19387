"""`python -m pipelines.cli ...`: the `biomed` command (for `torchrun -m pipelines.cli train ...`)."""

from pipelines.cli import entry

entry()
