"""Layer 2, the model bound to its data: argument boundary, the problem (−log L over
one flat unconstrained vector), and observation units."""
