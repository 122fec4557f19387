"""A failed shard task becomes one line naming its input, whoever raised the error (issue 14, item 9)."""

from __future__ import annotations

import errno

from corpora.errors import MalformedInputError, StoreError
from pipelines.flows.fanout import failure_message


def test_our_errors_keep_their_message_and_gain_the_input_when_they_lack_it() -> None:
    own = MalformedInputError("/in/a.xml", "bad XML", line=3)
    assert failure_message("/in/a.xml", own) == "/in/a.xml, line 3: bad XML"
    store = StoreError("manifest unreadable")
    assert failure_message("/in/a.xml", store) == "/in/a.xml: manifest unreadable"


def test_foreign_errors_name_the_input_not_the_staging_file() -> None:
    exc = OSError(errno.EIO, "Input/output error", "/ds/.staging/a-1234.0f3e.parquet")
    assert failure_message("/in/a.xml", exc) == (
        "/in/a.xml: unexpected OSError: [Errno 5] Input/output error: '/ds/.staging/a-1234.0f3e.parquet' "
        "(rerun with -v for the traceback, and report it)"
    )
    assert failure_message("/in/b.tsv", ValueError("")) == (
        "/in/b.tsv: unexpected ValueError: ValueError (rerun with -v for the traceback, and report it)"
    )
