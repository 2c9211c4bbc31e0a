"""QR PNGs per second per core, and the export zip's rows per second and peak memory.

What it measures:

1. Encoders, one at a time in this process on one core, over ``--sample`` claim URLs
   (``https://lineside.example.com/claim/lsc_`` + 26 random characters): segno (if
   installed; ``pip install segno``) saving a PNG at 4 px a module with a 4-module border;
   zxing-cpp choosing the mask by penalty score itself, and with a fixed mask 2 (what
   Lineside did before), each through Lineside's 1-bit PNG writer; and Lineside's
   ``png_batch`` in chunks of 512 (mask 0, the seven other candidates derived and scored in
   one go, ``qr_masks``), which is what an export runs. Rates are per second of this
   process's CPU time, so another busy process on the machine lowers them less than it
   lowers wall-clock rates.
2. ``write_zip`` of ``--count`` synthetic rows (with tokens and two metadata columns) to a
   temporary file with ``--workers`` encoding processes, in a fresh subprocess each time, at
   a tenth of the count and at the count: wall time, rows/s, the parent's peak RSS
   (``ru_maxrss``), and in separate runs the parent's tracemalloc peak. Flat memory means
   the two sizes show about the same peaks.

Reproduce (from the repository root):

    .venv/bin/python bench/qr_encoders.py                  # 100,000 rows, 2 workers
    .venv/bin/python bench/qr_encoders.py --count 20000 --skip-tracemalloc
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import secrets
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import zxingcpp
from scratch import cpu_model

from lineside.adapters.labels import LabelRow, write_zip
from lineside.adapters.labels.qr import png_batch, png_of
from lineside.adapters.labels.qr_masks import Matrix
from lineside.adapters.labels.qr_stream import CHUNK_ROWS

PREFIX = "https://lineside.example.com/claim/lsc_"


def claim_url() -> str:
    return PREFIX + secrets.token_urlsafe(20)[:26]


def synthetic_rows(count: int) -> Iterator[LabelRow]:
    for index in range(count):
        yield LabelRow(
            device_id=f"0198{secrets.token_hex(14)}",
            serial_number=f"SN-{index:08d}",
            claim_url=claim_url(),
            metadata={"model": "TX-1", "batch": index // 1000},
            device_token="lsd_" + secrets.token_urlsafe(32),
        )


def machine() -> str:
    model = cpu_model()
    usable = len(os.sched_getaffinity(0))
    return f"{model}; {os.cpu_count()} logical cores, {usable} usable; Python {platform.python_version()}"


def rate_per_core(encode: Callable[[str], bytes], sample: int) -> float:
    urls = [claim_url() for _ in range(sample)]
    started = time.process_time()
    for url in urls:
        encode(url)
    return sample / (time.process_time() - started)


def zxing_symbol(text: str, mask: int | None) -> Matrix:
    options = {} if mask is None else {"data_mask": mask}
    barcode = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode, ec_level="M", **options)
    symbol: Matrix = np.asarray(barcode.to_image(scale=1, add_quiet_zones=False)) == 0
    return symbol


def batch_rate_per_core(sample: int) -> float:
    urls = [claim_url() for _ in range(sample)]
    started = time.process_time()
    for start in range(0, sample, CHUNK_ROWS):
        png_batch(urls[start : start + CHUNK_ROWS])
    return sample / (time.process_time() - started)


def segno_png(text: str) -> bytes:
    import segno  # noqa: PLC0415 (optional, for comparison only)

    out = io.BytesIO()
    segno.make(text, error="m", boost_error=False).save(out, kind="png", scale=4, border=4)
    return out.getvalue()


def export_once(count: int, workers: int, traced: bool) -> dict[str, float]:
    """One export in this process (run in a fresh subprocess so ru_maxrss is its own)."""
    if traced:
        tracemalloc.start()
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        written = write_zip(
            out,
            synthetic_rows(count),
            metadata_columns=["model", "batch"],
            with_tokens=True,
            csv_name="tokens.csv",
            workers=workers,
        )
        seconds = time.perf_counter() - started
        size = out.tell()
    return {
        "rows": written,
        "seconds": seconds,
        "bytes": size,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "traced_peak_mb": tracemalloc.get_traced_memory()[1] / 1e6 if traced else 0.0,
        "cpu_seconds": time.process_time(),
    }


def export_in_subprocess(count: int, workers: int, traced: bool) -> dict[str, float]:
    command = [sys.executable, __file__, "--export-once", str(count), "--workers", str(workers)]
    if traced:
        command.append("--traced")
    done = subprocess.run(
        command, check=True, capture_output=True, text=True, cwd=Path(__file__).parent.parent
    )
    result: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sample", type=int, default=2000, help="QR codes per encoder rate")
    parser.add_argument("--skip-tracemalloc", action="store_true")
    parser.add_argument("--export-once", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export_once is not None:
        print(json.dumps(export_once(args.export_once, args.workers, args.traced)))
        return

    print(f"machine: {machine()}")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    encoders: list[tuple[str, Callable[[str], bytes], int]] = [
        ("segno PNG", segno_png, max(args.sample // 8, 50)),
        ("zxing-cpp search", lambda text: png_of(zxing_symbol(text, None)), args.sample),
        ("zxing-cpp mask 2", lambda text: png_of(zxing_symbol(text, 2)), args.sample),
    ]
    for name, encode, sample in encoders:
        try:
            print(f"{name + ':':28}{rate_per_core(encode, sample):8.0f} QR PNGs/s per core")
        except ImportError:
            print(f"{name + ':':28}not installed (pip install segno)")
    print(f"{'png_batch (ours):':28}{batch_rate_per_core(args.sample):8.0f} QR PNGs/s per core")

    for count in (max(args.count // 10, 1), args.count):
        run = export_in_subprocess(count, args.workers, traced=False)
        print(
            f"write_zip {count:>7} rows, {args.workers} workers: {run['seconds']:6.1f} s, "
            f"{count / run['seconds']:6.0f} rows/s, {run['bytes'] / 1e6:6.1f} MB zip, "
            f"parent CPU {run['cpu_seconds']:5.1f} s, parent peak RSS {run['maxrss_mb']:5.1f} MB"
        )
    if not args.skip_tracemalloc:
        for count in (max(args.count // 10, 1), args.count):
            run = export_in_subprocess(count, args.workers, traced=True)
            print(f"write_zip {count:>7} rows, tracemalloc peak (parent): {run['traced_peak_mb']:6.2f} MB")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
