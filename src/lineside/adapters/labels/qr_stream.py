"""QR PNGs for a stream of label rows, encoded on every core, handed back in order.

Rows are read in chunks of ``CHUNK_ROWS``; at most two chunks per worker are in flight, so
memory holds a few thousand rows whatever the batch size. The caller (which writes the
archive) runs in parallel with the workers.

Workers start with the ``forkserver`` method: the caller may be a thread of a web server,
and forking a threaded process can copy a lock some other thread holds.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import islice

from lineside.adapters.labels.qr import png_batch
from lineside.adapters.labels.rows import LabelRow

CHUNK_ROWS = 512
SMALL_BATCH = 200  # fewer rows than this are encoded faster than worker processes start
_IN_FLIGHT_PER_WORKER = 2

EncodedChunk = tuple[list[LabelRow], list[bytes]]


def encoded_chunks(rows: Iterable[LabelRow], *, workers: int | None = None) -> Generator[EncodedChunk]:
    """(rows, their QR PNGs) chunk by chunk. ``workers=None``: every core, or none for a small
    batch; ``workers=1``: encode in this process. Close the generator to stop the workers early.
    """
    if workers is not None and workers < 1:
        raise ValueError("workers must be at least 1")
    chunks = _chunked(iter(rows))
    first = next(chunks, [])
    if workers is None:
        workers = 1 if len(first) < SMALL_BATCH else _cores()
    if not first:
        return
    if workers == 1:
        for chunk in _prepend(first, chunks):
            yield chunk, png_batch([row.claim_url for row in chunk])
    else:
        yield from _in_pool(_prepend(first, chunks), workers)


def _in_pool(chunks: Iterator[list[LabelRow]], workers: int) -> Generator[EncodedChunk]:
    context = multiprocessing.get_context(_start_method())
    pending: deque[tuple[list[LabelRow], Future[list[bytes]]]] = deque()
    pool = ProcessPoolExecutor(workers, mp_context=context)
    try:
        for chunk in chunks:
            pending.append((chunk, pool.submit(png_batch, [row.claim_url for row in chunk])))
            if len(pending) >= workers * _IN_FLIGHT_PER_WORKER:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _chunked(rows: Iterator[LabelRow]) -> Iterator[list[LabelRow]]:
    while chunk := list(islice(rows, CHUNK_ROWS)):
        yield chunk


def _prepend(first: list[LabelRow], rest: Iterator[list[LabelRow]]) -> Iterator[list[LabelRow]]:
    yield first
    yield from rest


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _start_method() -> str:
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
