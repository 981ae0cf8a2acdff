"""LV2 atom ports before each run, without Python (the callback calls this too): an input port
gets an empty atom:Sequence, an output port an atom:Chunk header announcing its free space.
Layout from lv2/atom/atom.h: LV2_Atom {uint32 size, uint32 type}, then a sequence's body
{uint32 unit, uint32 pad}."""
import numpy as np
from numba import carray, njit

from engine import blockabi as B

SEQUENCE, CHUNK = 0, 1          # rows of the urids array: atom:Sequence, atom:Chunk


@njit(nogil=True, cache=True)
def reset_atoms(ports, urids):
    """ports: int64 rows [address, capacity in bytes, 1 if output]."""
    for k in range(ports.shape[0]):
        words = carray(B.address_as_voidptr(ports[k, 0]), (4,), dtype=np.uint32)
        if ports[k, 2]:
            words[0] = np.uint32(ports[k, 1] - 8)      # the space after the atom header
            words[1] = np.uint32(urids[CHUNK])
        else:
            words[0] = np.uint32(8)                    # just the sequence body: no events
            words[1] = np.uint32(urids[SEQUENCE])
            words[2] = np.uint32(0)                    # unit: frames
            words[3] = np.uint32(0)
