"""Layer 3, minimizers of a smooth scalar function of one flat vector, jit-friendly.

Failures are status codes (:class:`mleppl.core.status.Status`) in the returned
records, never exceptions: the thin Python shell turns them into messages.
"""
