"""The C-level interface between a host (an audio callback) and a compiled kernel.

A host cannot pass NumPy arrays through a C callback, so each running learner is described by a
*slot table*: an int64 array holding the addresses and sizes of the arrays its kernel uses. Every
compiled kernel module also exports `block`, a Numba cfunc `int64 block(void *slot, int64 n)`
that views those arrays and runs the kernel on n samples. The host calls it through its address,
so a new circuit can be swapped in while the audio callback keeps running unchanged.
"""
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from engine.words import declare

# slot table words
SLOT_WORDS = 24
declare(globals(), "S_", """
    X                  # float64[n]: the input block
    OUT                # float64[n, 3]: target, learned, loss per sample
    TRACE              # float64[rows, cols]
    TRACE_ROWS
    TRACE_COLS
    ST                 # float64[st_len]: the kernel state
    ST_LEN
    CFG                # float64[cfg_len]: the kernel settings
    CFG_LEN
    BLOCK_FN           # address of the module's `block` cfunc
    MAX_FRAMES         # capacity of x and out
    N_PARAMS
    THETA              # offset of theta in st
    INIT               # float64[P]: values a reset restores
    LO                 # offset of lo[] in cfg
    HI                 # offset of hi[] in cfg
    BANK_INDEX         # st index of the active bank (LACTOSE), -1 when there are no banks
    PROCESSOR          # host only: the processor table (a ground truth) that feeds `sptmod` (0: none)
    REST:4             # st ranges [lo, hi) of the target's and the learnable circuit's state (-1: unknown)
    NEXT_FN            # host only: a kernel specialised for new settings, taken at a block start (0: none)
    NEXT_SETTINGS      # host only: float64[CF_HEADER]: the settings words that kernel starts with
""", end=SLOT_WORDS)

BLOCK_SIGNATURE = types.int64(types.voidptr, types.int64)


@intrinsic
def address_as_voidptr(typingctx, address):
    """An integer address (as stored in a table) as a void pointer that `carray` accepts."""
    if not isinstance(address, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], ir.IntType(8).as_pointer())
    return types.voidptr(address), codegen


@intrinsic
def voidptr_address(typingctx, pointer):
    """A void pointer as an integer (to test it for NULL)."""
    if not isinstance(pointer, types.RawPointer):
        return None

    def codegen(context, builder, signature, args):
        return builder.ptrtoint(args[0], ir.IntType(64))
    return types.int64(pointer), codegen


@intrinsic
def call_block(typingctx, fn_address, slot, n):
    """Call a `block` cfunc through its address: int64 fn(void *slot, int64 n)."""
    if not (isinstance(fn_address, types.Integer) and isinstance(slot, types.RawPointer)
            and n == types.int64):
        return None

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        fnty = ir.FunctionType(i64, [ir.IntType(8).as_pointer(), i64])
        fn = builder.inttoptr(args[0], fnty.as_pointer())
        return builder.call(fn, [args[1], args[2]])
    return types.int64(fn_address, slot, n), codegen


def address(array: np.ndarray) -> int:
    """Address of a C-contiguous array's data (the caller keeps the array alive)."""
    if not array.flags.c_contiguous:
        raise ValueError("slot arrays must be C-contiguous")
    return int(array.ctypes.data)
