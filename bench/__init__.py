"""Benchmarks that compare EdgeCDN side by side with its peers; results are reported as ratios."""
