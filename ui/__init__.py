import engine  # noqa: F401  (chooses the Numba cache folder before numba is imported)
