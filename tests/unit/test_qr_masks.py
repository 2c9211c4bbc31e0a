"""The QR mask is chosen by the ISO 18004 penalty score: the seven candidates derived from
one mask-0 symbol are exactly what zxing-cpp encodes with each fixed mask, and the one chosen
is the one zxing-cpp's own (slower) search picks, for symbols of many sizes."""

from __future__ import annotations

import secrets

import numpy as np
import pytest
import zxingcpp

from lineside.adapters.labels.qr import best_symbols, symbol
from lineside.adapters.labels.qr_masks import MASKS, Matrix, format_bits, layout

# Claim URLs behind public URLs of many lengths: versions 2 to 10 of the symbol.
PREFIXES = [
    "https://x.io",
    "https://lineside.example.com",
    "https://provisioning." + "factory" * 12 + ".example.com",
]


def claim_url(prefix: str) -> str:
    return f"{prefix}/claim/lsc_{secrets.token_urlsafe(20)[:26]}"


def searched_by_zxing(text: str) -> Matrix:
    barcode = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode, ec_level="M")
    dark: Matrix = np.asarray(barcode.to_image(scale=1, add_quiet_zones=False)) == 0
    return dark


@pytest.mark.parametrize("prefix", PREFIXES)
def test_every_candidate_is_what_zxing_encodes_with_that_mask(prefix: str) -> None:
    text = claim_url(prefix)
    base = symbol(text)
    shared = layout(base.shape[0])
    for mask in range(MASKS):
        derived = np.where(shared.format_cells, shared.formats[mask], base ^ shared.flips[mask])
        assert np.array_equal(derived, symbol(text, data_mask=mask)), mask


@pytest.mark.parametrize("prefix", PREFIXES)
def test_the_mask_chosen_is_the_one_zxings_search_chooses(prefix: str) -> None:
    texts = [claim_url(prefix) for _ in range(150)]

    chosen = best_symbols(texts)

    assert all(
        np.array_equal(mine, searched_by_zxing(text)) for mine, text in zip(chosen, texts, strict=True)
    )


def test_a_batch_of_mixed_sizes_keeps_its_order() -> None:
    texts = [claim_url(PREFIXES[index % 3]) for index in range(30)]
    assert [modules.shape for modules in best_symbols(texts)] == [symbol(text).shape for text in texts]


def test_format_bits_are_the_standards() -> None:
    # ISO 18004 annex C, table C.1: level M, masks 0 to 7.
    assert [format_bits(mask) for mask in range(MASKS)] == [
        0x5412,
        0x5125,
        0x5E7C,
        0x5B4B,
        0x45F9,
        0x40CE,
        0x4F97,
        0x4AA0,
    ]
