"""Layer 4, uncertainty of the estimate: observed information and the delta method,
robust and cluster sandwiches, the after-fit diagnosis, profile intervals, the bootstrap."""
