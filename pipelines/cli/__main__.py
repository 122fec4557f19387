"""`python -m pipelines.cli ...`: the `biomed` command (for `torchrun -m pipelines.cli train ...`)."""

import sys

from pipelines.cli import main

sys.exit(main())
