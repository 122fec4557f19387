"""The one exception hierarchy of biomed-pipelines.

Every error a user can cause names what it is about: the file, and where known the line or the
record. `biomodels/` raises subclasses of these too, so callers catch `BiomedError` once.

Tested in `tests/corpora/formats/test_pubtator.py`.
"""

from __future__ import annotations

from pathlib import Path


class BiomedError(Exception):
    """Base of every error this project raises on purpose."""


class InputError(BiomedError):
    """Bad input: a file that cannot be read as the format it claims to be.

    The message always starts with the path and, where known, `line N` and the record id, so a
    curator can open the file at the right place.
    """

    def __init__(
        self,
        path: str | Path,
        message: str,
        *,
        line: int | None = None,
        record: str | None = None,
    ) -> None:
        self.path = str(path)
        self.line = line
        self.record = record
        self.reason = message
        where = self.path
        if line is not None:
            where += f", line {line}"
        if record is not None:
            where += f", record {record}"
        super().__init__(f"{where}: {message}")

    def __reduce__(self) -> tuple:
        """Pickle with path, message, line and record, so an error raised in a reader's child
        process (`corpora.formats.isolated_read`) arrives in the parent as it was raised."""
        return (_rebuild_input_error, (type(self), self.path, self.reason, self.line, self.record))


def _rebuild_input_error(
    cls: type[InputError], path: str, reason: str, line: int | None, record: str | None
) -> InputError:
    return cls(path, reason, line=line, record=record)


class UnknownFormatError(InputError):
    """The format could not be detected from content, or the name given is not a known format."""


class MalformedInputError(InputError):
    """The file is of a known format but broken: bad XML, truncated gzip, a short TSV row."""


class EncodingError(InputError):
    """The file is not valid UTF-8."""


class EmptyInputError(InputError):
    """The file holds no records at all."""


class OffsetMismatchError(InputError):
    """An annotation's offsets do not select the text the annotation says it covers."""


class DocumentTooLargeError(InputError):
    """A document, line or declared offset goes past a size limit (`corpora.formats.limits`): refused
    before the memory is allocated, naming the limit and the setting that raises it."""


class ParserCrashError(InputError):
    """A reader's child process died (a native parser crash, a signal, out of memory): this file
    alone fails, and the message names the signal and how many records were read before it."""


class StoreError(BiomedError):
    """The Parquet store is unreadable, inconsistent, or a write failed validation."""


class ModelError(BiomedError):
    """A model, checkpoint or model directory is missing, incomplete or inconsistent."""


class ConfigError(BiomedError):
    """A configuration value (CLI option, config file, preset) is invalid."""


class UsageError(BiomedError):
    """A mistake on the command line found before any work starts (a missing input, a wrong
    --format, a model folder that holds no model): the CLI prints it as one line and exits 2."""


class WorkerError(BiomedError):
    """A worker process died, or broke the protocol with the process that started it."""


class PartialFailure(BiomedError):
    """A run finished but some inputs failed; `summary` holds what was done and what failed."""

    def __init__(self, message: str, summary: object) -> None:
        self.summary = summary
        self.message = message
        super().__init__(message)

    def __reduce__(self) -> tuple:
        return (type(self), (self.message, self.summary))
