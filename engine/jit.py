"""How the per-sample code is compiled: the generated kernels and the helpers they inline (losses,
optimisers). Of fast-math only `contract`: a*b + c may become one fused multiply-add, as C++ built
with -march=native does (issue 17: the learning recurrence is latency-bound, and FMAs shorten it).
No reassociation, and NaN and Inf keep their meaning: the kernels' skip path tests x - x == 0."""
FASTMATH = {"contract"}
HELPER = dict(cache=True, nogil=True, error_model="numpy", fastmath=FASTMATH)
# the circuits' primitives: exactly as written, bit for bit what NumPy computes. Said outright,
# because Numba compiles a callee with its caller's fastmath flags otherwise
STRICT = dict(cache=True, nogil=True, error_model="numpy", fastmath=False)
