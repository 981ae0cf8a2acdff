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

# slot table words
S_X = 0             # float64[n]: the input block
S_OUT = 1           # float64[n, 3]: target, learned, loss per sample
S_TRACE = 2         # float64[rows, cols]
S_TRACE_ROWS = 3
S_TRACE_COLS = 4
S_ST = 5            # float64[st_len]: the kernel state
S_ST_LEN = 6
S_CFG = 7           # float64[cfg_len]: the kernel settings
S_CFG_LEN = 8
S_BLOCK_FN = 9      # address of the module's `block` cfunc
S_MAX_FRAMES = 10   # capacity of x and out
S_N_PARAMS = 11
S_THETA = 12        # offset of theta in st
S_INIT = 13         # float64[P]: values a reset restores
# words 14-16 are free (the hidden knobs' goals now live in cfg: the kernel glides per sample)
S_LO = 17           # offset of lo[] in cfg
S_HI = 18           # offset of hi[] in cfg
S_BANK_INDEX = 19   # st index of the active bank (LACTOSE), -1 when there are no banks
S_PROCESSOR = 20    # host only: address of the processor table (the ground truth) that feeds `sptmod` (0: none)
SLOT_WORDS = 24

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
