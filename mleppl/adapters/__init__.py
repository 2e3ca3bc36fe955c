"""Layer 1, the NumPyro adapter: the only code that reads traces, applies handlers
or looks inside constraints. It hands the rest a typed description of the sites."""
