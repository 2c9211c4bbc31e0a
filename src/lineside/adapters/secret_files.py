"""Files of secrets that exist on disk before the transaction that makes the secrets valid
commits (DESIGN.md §5): nobody is left with a database of credentials that exist nowhere.

The order is: write to a private temporary file beside the target, fsync it, commit, then
rename it into place. A failure before the commit leaves no file and nothing in the database;
a kill between the commit and the rename leaves the secrets in the temporary file, whose
name says what it is (``.NAME.pending-XXXX``).

::

    with StagedSecretFile(out, overwrite=force) as staged:
        use_case(..., before_commit=lambda data: staged.write_and_sync(data))
        staged.publish()
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from lineside.adapters.disk import sync_directory

OWNER_ONLY = 0o600


class TargetExists(FileExistsError):
    """The target file exists and overwriting was not asked for."""


class NotPublished(Exception):
    """The secrets are valid and on disk, but could not be moved to their target."""


class StagedSecretFile:
    def __init__(self, target: Path, *, overwrite: bool = False) -> None:
        self.target = target
        self._overwrite = overwrite
        self.staging = target.with_name(f".{target.name}.pending-{secrets.token_hex(4)}")
        self._handle: BinaryIO | None = None
        self._published = False

    def open(self) -> None:
        """Create the private temporary file (TargetExists if the target is there already)."""
        if self._handle is not None:
            return
        if self.target.exists() and not self._overwrite:
            raise TargetExists(f"{self.target} exists")
        descriptor = os.open(self.staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, OWNER_ONLY)
        os.fchmod(descriptor, OWNER_ONLY)  # os.open's mode passes through the umask
        self._handle = os.fdopen(descriptor, "wb")

    def __enter__(self) -> StagedSecretFile:
        self.open()
        return self

    @property
    def handle(self) -> BinaryIO:
        """The open temporary file, for writers that stream into it."""
        if self._handle is None:
            raise RuntimeError("the staged file is not open")
        return self._handle

    def write_and_sync(self, data: bytes) -> None:
        self.handle.write(data)
        self.sync()

    def sync(self) -> None:
        """The bytes written so far are on disk (call before the commit)."""
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def publish(self) -> Path:
        """Move the synced file into place (after the commit); the rename survives a crash."""
        try:
            self.sync()
            self.handle.close()
            os.replace(self.staging, self.target)
        except OSError as error:
            self._published = True  # the staging file holds valid secrets: keep it
            raise NotPublished(
                f"the secrets are valid but could not be moved to {self.target} ({error.strerror}); "
                f"they are in {self.staging}"
            ) from error
        self._published = True
        sync_directory(self.target.parent)
        return self.target

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._published:
            return
        if self._handle is not None and not self._handle.closed:
            # Closing flushes what is buffered, which fails again on a full disk: the file
            # is removed anyway, and the first failure is the one worth reporting.
            with contextlib.suppress(OSError):
                self._handle.close()
        self.staging.unlink(missing_ok=True)
