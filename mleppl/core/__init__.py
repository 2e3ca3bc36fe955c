"""Layer 0, the types every other layer shares: sites and layout, status codes,
records, warnings, the float64 entry decorator, the compile cache and BLAS control.

Nothing here imports from any other part of mleppl.
"""
