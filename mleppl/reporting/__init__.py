"""Layer 5, what is reported from a fit record: tables and intervals, hypothesis tests,
predictive draws, and the ArviZ export (the only module that imports ArviZ)."""
