"""`python -m pipelines.cli ...`: the `biomed` command (for `torchrun -m pipelines.cli train ...`)."""

from pipelines.cli import entry

if __name__ == "__main__":  # worker processes (spawn, forkserver) import this module again
    entry()
