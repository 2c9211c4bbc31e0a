"""Firmware images on disk, named by their SHA-256: ``<data_dir>/firmware/<sha256>``.

An upload is streamed to a private temporary file in the same directory, hashed as it is
written, flushed to disk, then renamed to its hash. A rename is atomic, so a reader never
sees half an image and a crash leaves at most a stray temporary file. The same bytes
uploaded twice (two products shipping one image) are kept once.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import AsyncIterable
from pathlib import Path
from typing import IO, BinaryIO

from anyio import to_thread

from lineside.adapters.disk import sync_directory
from lineside.services.ports import StoredImage

# Chunks are gathered up to this size, then written and hashed off the event loop: one
# thread hop per MiB rather than one per 64 KiB network read, and never more held in memory.
FLUSH_BYTES = 1024 * 1024
_SHA256 = re.compile(r"[0-9a-f]{64}")
_TEMPORARY_PREFIX = ".upload-"


class FileFirmwareStore:
    def __init__(self, root: Path, *, flush_bytes: int = FLUSH_BYTES) -> None:
        self.root = root
        self.flush_bytes = flush_bytes

    async def put(self, chunks: AsyncIterable[bytes]) -> StoredImage:
        await to_thread.run_sync(self._make_root)
        descriptor, name = tempfile.mkstemp(dir=self.root, prefix=_TEMPORARY_PREFIX)
        temporary = Path(name)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                digest, size = await self._write_all(chunks, handle)
                await to_thread.run_sync(_sync_to_disk, handle)
            stored = StoredImage(sha256=digest.hexdigest(), size_bytes=size)
            if size:
                await to_thread.run_sync(self._keep, temporary, stored.sha256)
            return stored
        finally:
            temporary.unlink(missing_ok=True)

    def open(self, sha256: str) -> BinaryIO | None:
        if not _SHA256.fullmatch(sha256):
            return None
        try:
            return (self.root / sha256).open("rb")
        except FileNotFoundError:
            return None

    async def _write_all(self, chunks: AsyncIterable[bytes], handle: IO[bytes]) -> tuple[hashlib._Hash, int]:
        digest = hashlib.sha256()
        size = 0
        pending: list[bytes] = []
        pending_size = 0
        async for chunk in chunks:
            if not chunk:
                continue
            pending.append(chunk)
            pending_size += len(chunk)
            if pending_size >= self.flush_bytes:
                await to_thread.run_sync(_write, handle, digest, pending)
                size += pending_size
                pending, pending_size = [], 0
        if pending:
            await to_thread.run_sync(_write, handle, digest, pending)
            size += pending_size
        return digest, size

    def _make_root(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def _keep(self, temporary: Path, sha256: str) -> None:
        final = self.root / sha256
        if final.exists():
            return  # the same bytes are already here; the temporary file is removed
        temporary.chmod(0o640)
        os.replace(temporary, final)
        sync_directory(self.root)  # the rename must survive a power cut, not only the bytes


def _write(handle: IO[bytes], digest: hashlib._Hash, chunks: list[bytes]) -> None:
    for chunk in chunks:
        digest.update(chunk)
        handle.write(chunk)


def _sync_to_disk(handle: IO[bytes]) -> None:
    handle.flush()
    os.fsync(handle.fileno())
