"""The host's LV2 URID map and unmap (lv2/urid/urid.h), as Numba cfuncs over one preallocated
table per process, so a plugin may call them from any thread, the audio thread included, without
Python or the GIL, and every instance sees the same ids.

The table is a hash table of CAPACITY slots of SLOT bytes, each a NUL-terminated URI (empty while
free), after a header {int64 count, int64 lock}. A URI's id is its slot number + 1 and never
changes. map finds a URI by FNV-1a hash and linear probing, copies a new URI into the first free
slot, and returns 0 (the spec's "could not map") when the table is full or the URI is empty or
longer than SLOT - 1 bytes. unmap returns a pointer into the table, or NULL for an unknown id.
Both hold a spin lock (an atomic compare-and-swap on the lock word) for the few microseconds of a
lookup, since plugins may map from their own threads."""
from __future__ import annotations

import ctypes

import numpy as np
from llvmlite import ir
from numba import carray, cfunc, njit, types
from numba.extending import intrinsic

from engine import blockabi as B

CAPACITY = 4096                 # URIs (a power of two)
SLOT = 256                      # bytes per URI, its NUL included
HEADER = 64                     # bytes before slot 0: int64 count, int64 lock, unused
COUNT, LOCK = 0, 1              # header words

MAP_SIGNATURE = types.uint32(types.voidptr, types.voidptr)
UNMAP_SIGNATURE = types.voidptr(types.voidptr, types.uint32)

# the one table of this process (never freed: plugins may keep the map until the process ends)
TABLE = np.zeros(HEADER + CAPACITY * SLOT, dtype=np.uint8)


@intrinsic
def _cas(typingctx, address, expected, new):
    """Atomic compare-and-swap of the int64 at address; True when it held `expected`."""
    if not all(isinstance(t, types.Integer) for t in (address, expected, new)):
        return None

    def codegen(context, builder, signature, args):
        ptr = builder.inttoptr(args[0], ir.IntType(64).as_pointer())
        want = context.cast(builder, args[1], signature.args[1], types.int64)
        value = context.cast(builder, args[2], signature.args[2], types.int64)
        old_new = builder.cmpxchg(ptr, want, value, "acquire", "monotonic")
        return builder.extract_value(old_new, 1)
    return types.boolean(address, expected, new), codegen


@intrinsic
def _release(typingctx, address):
    """Atomically store 0 in the int64 at address (release ordering)."""
    if not isinstance(address, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        ptr = builder.inttoptr(args[0], i64.as_pointer())
        builder.atomic_rmw("xchg", ptr, ir.Constant(i64, 0), "release")
        return context.get_dummy_value()
    return types.none(address), codegen


@njit(nogil=True, cache=True)
def _lock(base):
    while not _cas(base + 8 * LOCK, 0, 1):
        pass


@njit(nogil=True, cache=True)
def _map(handle, uri):
    base = B.voidptr_address(handle)
    if base == 0 or B.voidptr_address(uri) == 0:
        return np.uint32(0)
    text = carray(uri, (SLOT,), dtype=np.uint8)
    n = 0
    h = np.uint32(2166136261)
    while n < SLOT and text[n] != 0:
        h = np.uint32((h ^ np.uint32(text[n])) * np.uint32(16777619))
        n += 1
    if n == 0 or n >= SLOT:
        return np.uint32(0)
    header = carray(handle, (HEADER // 8,), dtype=np.int64)
    slots = carray(B.address_as_voidptr(base + HEADER), (CAPACITY, SLOT), dtype=np.uint8)
    _lock(base)
    k = int(h) & (CAPACITY - 1)
    found = np.uint32(0)
    for _ in range(CAPACITY):
        s = slots[k]
        if s[0] == 0:                                   # free: the URI is not there yet
            if header[COUNT] < CAPACITY - 1:            # keep one slot free so probes end
                for j in range(n):
                    s[j] = text[j]
                s[n] = 0
                header[COUNT] += 1
                found = np.uint32(k + 1)
            break
        same = s[n] == 0
        j = 0
        while same and j < n:
            same = s[j] == text[j]
            j += 1
        if same:
            found = np.uint32(k + 1)
            break
        k = (k + 1) & (CAPACITY - 1)
    _release(base + 8 * LOCK)
    return found


@njit(nogil=True, cache=True)
def _unmap(handle, urid):
    base = B.voidptr_address(handle)
    if base == 0 or urid == 0 or urid > CAPACITY:
        return B.address_as_voidptr(0)
    address = base + HEADER + (int(urid) - 1) * SLOT
    _lock(base)
    used = carray(B.address_as_voidptr(address), (1,), dtype=np.uint8)[0] != 0
    _release(base + 8 * LOCK)
    return B.address_as_voidptr(address if used else 0)


@cfunc(MAP_SIGNATURE, nogil=True, cache=True)
def map_uri(handle, uri):
    return _map(handle, uri)


@cfunc(UNMAP_SIGNATURE, nogil=True, cache=True)
def unmap_uri(handle, urid):
    return _unmap(handle, urid)


# ---- the C structs plugins receive (lv2/urid/urid.h)

MAP_FN = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_void_p, ctypes.c_char_p)
UNMAP_FN = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint32)


class Map(ctypes.Structure):          # LV2_URID_Map
    _fields_ = [("handle", ctypes.c_void_p), ("map", ctypes.c_void_p)]


class Unmap(ctypes.Structure):        # LV2_URID_Unmap
    _fields_ = [("handle", ctypes.c_void_p), ("unmap", ctypes.c_void_p)]


# one of each per process: their addresses go into every instance's features
MAP = Map(TABLE.ctypes.data, map_uri.address)
UNMAP = Unmap(TABLE.ctypes.data, unmap_uri.address)
_map_call = MAP_FN(map_uri.address)
_unmap_call = UNMAP_FN(unmap_uri.address)


def urid(uri: str) -> int:
    """The id of uri in this process's map (0 when it cannot be mapped: empty, too long, full)."""
    return int(_map_call(TABLE.ctypes.data, uri.encode("utf-8")))


def unmap(urid_: int) -> str | None:
    """The URI of a mapped id, None for an id not mapped."""
    if not 0 < int(urid_) < 2 ** 32:
        return None
    p = _unmap_call(TABLE.ctypes.data, int(urid_))
    return ctypes.string_at(p).decode("utf-8") if p else None


def count() -> int:
    """How many URIs are mapped."""
    return int(TABLE[:8].view(np.int64)[0])
