from engine import numba_cache as _numba_cache

_numba_cache.configure()     # before any module of the program imports numba (see numba_cache)
