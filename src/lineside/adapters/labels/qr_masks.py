"""Choosing each QR code's data mask by the ISO/IEC 18004 penalty score, fast.

A QR encoder must pick, of eight data masks, the one whose symbol scores the lowest penalty
(long runs, 2x2 blocks, finder-like patterns, dark/light imbalance): weaker decoders read
such symbols more reliably. zxing-cpp can do it, at about three times the cost of a fixed
mask. Here one symbol is encoded with mask 0, and the other seven are derived from it (a mask
only flips data modules, and the 15 format bits name it); all eight candidates of a whole
batch of same-sized symbols are scored at once, each row and column packed into a 64-bit
integer, so every rule is a handful of shifts, ANDs and population counts.

Map::

    SymbolLayout   per size: where data modules are, each mask's flips, each mask's format bits
    choose_masks   the best mask's module matrix of each symbol (dark = True)
    penalties      the four penalty rules, for rows or columns of any number of candidates
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from numpy.typing import NDArray

MASKS = 8
EC_LEVEL_M = 0b00  # the format information's two error-correction bits for level M
_FORMAT_GENERATOR = 0b10100110111
_FORMAT_XOR = 0b101010000010010
MAX_MODULES = 64  # a row fits in one uint64: versions 1 to 11 (the claim URLs need 3 to 6)
# N3: a finder pattern's profile, dark-light-dark-dark-dark-light-dark.
_FINDER_CORE = (1, 0, 1, 1, 1, 0, 1)

Bits = NDArray[np.uint64]
Matrix = NDArray[np.bool_]


Indices = NDArray[np.intp]


def _mask(number: int, i: Indices, j: Indices) -> Matrix:
    """ISO 18004 table 10: where mask ``number`` flips a module (row i, column j)."""
    formulas = (
        lambda: (i + j) % 2 == 0,
        lambda: i % 2 == 0,
        lambda: j % 3 == 0,
        lambda: (i + j) % 3 == 0,
        lambda: (i // 2 + j // 3) % 2 == 0,
        lambda: (i * j) % 2 + (i * j) % 3 == 0,
        lambda: ((i * j) % 2 + (i * j) % 3) % 2 == 0,
        lambda: ((i + j) % 2 + (i * j) % 3) % 2 == 0,
    )
    result: Matrix = formulas[number]()
    return result


def format_bits(mask: int) -> int:
    """The 15 format information bits of error correction level M and ``mask``."""
    data = (EC_LEVEL_M << 3) | mask
    remainder = data << 10
    for shift in range(14, 9, -1):
        if remainder & (1 << shift):
            remainder ^= _FORMAT_GENERATOR << (shift - 10)
    return ((data << 10) | remainder) ^ _FORMAT_XOR


def _format_positions(size: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Where format bits 0..14 go (row, column), in both copies (ISO 18004 figure 25)."""
    first = [(8, column) for column in (0, 1, 2, 3, 4, 5, 7, 8)] + [(row, 8) for row in (7, 5, 4, 3, 2, 1, 0)]
    second = [(size - 1 - index, 8) for index in range(7)] + [(8, size - 8 + index) for index in range(8)]
    # Bit 14 is the most significant: first[0] holds bit 14, first[14] bit 0.
    return first, second


def _alignment_centres(version: int) -> list[int]:
    if version == 1:
        return []
    count = version // 7 + 2
    last = 4 * version + 10
    step = 2 * ((last - 6 + (count - 1)) // (2 * (count - 1)))  # ISO 18004 annex E spacing
    return [6] + [last - step * index for index in range(count - 2, -1, -1)]


def _function_modules(size: int) -> Matrix:
    """Modules that are not data: finders with separators, timing, alignment, dark module,
    format and version information."""
    version = (size - 17) // 4
    used = np.zeros((size, size), dtype=bool)
    used[:9, :9] = used[:9, size - 8 :] = used[size - 8 :, :9] = True  # finders, separators, format
    used[6, :] = used[:, 6] = True  # timing
    centres = _alignment_centres(version)
    corners = {(6, 6), (6, size - 7), (size - 7, 6)}  # the finders' own centres
    for row in centres:
        for column in centres:
            if (row, column) not in corners:
                used[row - 2 : row + 3, column - 2 : column + 3] = True
    if version >= 7:
        used[:6, size - 11 : size - 8] = used[size - 11 : size - 8, :6] = True
    return used


def _pack(matrix: NDArray[np.bool_]) -> Bits:
    """Each row of the last two axes as a uint64, column 0 in the top bit."""
    size = matrix.shape[-1]
    padded = np.zeros((*matrix.shape[:-1], MAX_MODULES), dtype=bool)
    padded[..., :size] = matrix
    return np.packbits(padded, axis=-1).view(">u8")[..., 0].astype(np.uint64)


@dataclass(frozen=True)
class SymbolLayout:
    """What every symbol of one size shares, packed for the scoring."""

    size: int
    flips: Matrix  # (8, n, n): data modules that mask k flips relative to mask 0
    format_cells: Matrix  # (n, n): the 30 format modules
    formats: Matrix  # (8, n, n): each mask's format bits in those modules
    row_flips: Bits  # (8, n) packed
    column_flips: Bits
    row_format_cells: Bits  # (n,)
    column_format_cells: Bits
    row_formats: Bits  # (8, n)
    column_formats: Bits
    valid: np.uint64  # the bits of the n columns


@cache
def layout(size: int) -> SymbolLayout:
    if not 21 <= size <= MAX_MODULES or (size - 17) % 4:
        raise ValueError(f"no QR symbol of {size} modules is handled here")
    i, j = np.indices((size, size))
    data = ~_function_modules(size)
    mask0 = _mask(0, i, j)
    flips = np.stack([(mask0 ^ _mask(k, i, j)) & data for k in range(MASKS)])
    cells = np.zeros((size, size), dtype=bool)
    formats = np.zeros((MASKS, size, size), dtype=bool)
    first, second = _format_positions(size)
    for k in range(MASKS):
        bits = format_bits(k)
        for index in range(15):
            bit = bool(bits >> (14 - index) & 1)
            for row, column in (first[index], second[index]):
                cells[row, column] = True
                formats[k, row, column] = bit
    return SymbolLayout(
        size=size,
        flips=flips,
        format_cells=cells,
        formats=formats,
        row_flips=_pack(flips),
        column_flips=_pack(flips.transpose(0, 2, 1)),
        row_format_cells=_pack(cells),
        column_format_cells=_pack(cells.T),
        row_formats=_pack(formats),
        column_formats=_pack(formats.transpose(0, 2, 1)),
        valid=np.uint64(((1 << size) - 1) << (MAX_MODULES - size)),
    )


def _count(bits: Bits) -> NDArray[np.int64]:
    """Set bits of each line, summed over the last axis."""
    counted: NDArray[np.int64] = np.bitwise_count(bits).sum(axis=-1, dtype=np.int64)
    return counted


def _shifted(bits: Bits, by: int) -> Bits:
    """Column j + by moved to column j (zeros come in past the last column)."""
    return bits << np.uint64(by)


def penalties(lines: Bits, valid: np.uint64, *, blocks: bool) -> NDArray[np.int64]:
    """Rules N1 (runs) and N3 (finder-like patterns) over ``lines`` of shape (..., n): rows,
    or columns packed as rows; and N2 (2x2 blocks) when ``blocks`` (once, for the rows).
    Summed over the last axis."""
    dark = lines
    light = ~lines & valid
    score = np.zeros(lines.shape[:-1], dtype=np.int64)
    for color in (dark, light):
        five = color & _shifted(color, 1) & _shifted(color, 2) & _shifted(color, 3) & _shifted(color, 4)
        starts = five & ~(five >> np.uint64(1))
        score += _count(five) + 2 * _count(starts)  # a run of L modules scores L - 2
        if blocks:
            pair = color[..., :-1] & color[..., 1:]  # this row and the next
            score += 3 * _count(pair & _shifted(pair, 1))
    score += 40 * _count(_finder_like(dark, valid))
    return score


def _finder_like(dark: Bits, valid: np.uint64) -> Bits:
    """Where a dark-light-dark-dark-dark-light-dark run starts with four light modules before
    it or after it, counted once. Beyond the symbol is light: it is the quiet zone (ISO 18004
    and zxing-cpp agree, so Lineside picks the mask zxing-cpp's own search would)."""
    outside_light = ~dark  # padding past the last column reads as light
    core: Bits = np.full(dark.shape, valid, dtype=np.uint64)
    for offset, module in enumerate(_FINDER_CORE):
        core = core & _shifted(dark if module else outside_light, offset)
    after = _shifted(outside_light, 7) & _shifted(outside_light, 8) & _shifted(outside_light, 9)
    after = after & _shifted(outside_light, 10)
    before = (
        ~(dark >> np.uint64(1)) & ~(dark >> np.uint64(2)) & ~(dark >> np.uint64(3)) & ~(dark >> np.uint64(4))
    )
    found: Bits = core & (after | before)
    return found


def choose_masks(symbols: Matrix) -> tuple[NDArray[np.int64], Matrix]:
    """For symbols (b, n, n) encoded with mask 0: each one's best mask and its modules."""
    size = symbols.shape[-1]
    shared = layout(size)
    rows = _pack(symbols)[:, None, :] ^ shared.row_flips[None]
    rows = (rows & ~shared.row_format_cells) | shared.row_formats[None]
    columns = _pack(symbols.transpose(0, 2, 1))[:, None, :] ^ shared.column_flips[None]
    columns = (columns & ~shared.column_format_cells) | shared.column_formats[None]
    score = penalties(rows, shared.valid, blocks=True) + penalties(columns, shared.valid, blocks=False)
    dark = _count(rows)
    total = size * size
    score += 10 * (np.abs(20 * dark - 10 * total) // total)  # N4: every 5 % away from half
    best = np.argmin(score, axis=1)
    chosen = symbols ^ shared.flips[best]
    chosen = np.where(shared.format_cells, shared.formats[best], chosen)
    return best, chosen
