"""Reproducible benchmarks of streamrec; each writes JSON and Markdown to bench/results/."""
