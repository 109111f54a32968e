"""For compiled loops that read a large table at random (model weights, n-gram hash tables): a copy of
the table on huge pages, and a hint to start loading an element before it is needed.

Why: a random read in a table of tens of MB misses the cache and, with 4 KB pages, the TLB too; the loop
then waits ~100 ns per read. On 2 MB pages the TLB miss goes, and a read requested a few iterations ahead
overlaps with the work in between (the fastText n-gram rows: ~20% less CPU each, BENCHMARKS.md).
"""

from __future__ import annotations

import mmap

import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

HUGE_PAGE = 2 << 20


def on_huge_pages(matrix: np.ndarray) -> np.ndarray:
    """A copy of `matrix` in memory the kernel backs with 2 MB pages where it can (Linux THP, `madvise`
    mode included); a table under one huge page, or a system without THP, gets a plain copy."""
    if not hasattr(mmap, "MADV_HUGEPAGE") or matrix.nbytes < HUGE_PAGE:
        return np.ascontiguousarray(matrix)
    area = mmap.mmap(-1, matrix.nbytes + HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    raw = np.frombuffer(area, dtype=np.uint8)
    start = -raw.ctypes.data % HUGE_PAGE
    area.madvise(mmap.MADV_HUGEPAGE, start, matrix.nbytes)
    copy = raw[start : start + matrix.nbytes].view(matrix.dtype).reshape(matrix.shape)
    copy[...] = matrix
    return copy  # the view keeps `area` alive


@intrinsic
def fetch(typingctx, array, index):
    """Ask the CPU to start loading array[index] into cache (LLVM's prefetch: read, high locality)."""

    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        array_value = context.make_array(array_type)(context, builder, args[0])
        pointer = cgutils.get_item_pointer(context, builder, array_type, array_value, [args[1]])
        byte_pointer, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        prefetch_type = ir.FunctionType(ir.VoidType(), [byte_pointer, i32, i32, i32])
        prefetch = cgutils.get_or_insert_function(builder.module, prefetch_type, "llvm.prefetch.p0i8")
        builder.call(prefetch, [builder.bitcast(pointer, byte_pointer), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(array, index), codegen
