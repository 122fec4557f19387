"""Builders of hostile inputs for the reader tests: small on disk, huge once decompressed.

A gzip file may hold several members one after the other, and a reader sees their contents joined.
So a 2 GiB run of one byte is one compressed 1 MiB member written 2,048 times: about 2 MB on disk,
built in milliseconds, without ever holding more than 1 MiB in this process.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from pathlib import Path

MIB = 1 << 20


def gzip_member(data: bytes) -> bytes:
    """One complete gzip member holding `data`."""
    return gzip.compress(data, compresslevel=9, mtime=0)


def write_gzip_parts(path: Path, parts: Iterable[bytes | tuple[bytes, int]]) -> Path:
    """Write a gzip of `parts`: bytes are written as they are; (chunk, n) repeats chunk n times,
    compressed once (see the module docstring)."""
    with open(path, "wb") as fh:
        for part in parts:
            if isinstance(part, tuple):
                chunk, n = part
                member = gzip_member(chunk)
                for _ in range(n):
                    fh.write(member)
            else:
                fh.write(gzip_member(part))
    return path


def repeated(byte: bytes, mib: int) -> tuple[bytes, int]:
    """`mib` MiB of `byte`, as a part for write_gzip_parts."""
    return (byte * MIB, mib)
