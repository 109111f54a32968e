"""Huge-page copies for the compiled scorers' random reads (curate.random_reads)."""

from __future__ import annotations

import numpy as np

from curate.random_reads import HUGE_PAGE, on_huge_pages


def test_huge_page_copy_holds_the_same_values_on_an_aligned_start() -> None:
    matrix = np.random.default_rng(0).standard_normal((70_000, 16)).astype(np.float32)  # 4.5 MB
    copy = on_huge_pages(matrix)
    assert np.array_equal(copy, matrix) and copy.flags.c_contiguous and copy.ctypes.data % HUGE_PAGE == 0
    copy[0, 0] = 42.0  # a copy, not a view of the input
    assert matrix[0, 0] != 42.0


def test_a_small_table_is_a_plain_copy() -> None:
    small = np.arange(10, dtype=np.uint32)
    assert np.array_equal(on_huge_pages(small), small)
