"""Layer 7, fitting: the compiled fitting program, start values and multi-start,
assembly of the fit record (messages, diagnosis, warnings), and ``fit_mle``."""
