"""Benchmarks: PixelMesh side by side with a raw libvips loop, Pillow and thumbor, in one run.

Every contender processes the same photographs into outputs of the same sizes, formats and
qualities, with the same parallelism, after a warm-up. The driver (`python -m bench`) measures
throughput, CPU-seconds and peak RSS of the contender's own processes (read from `/proc`, so the
driver's own work is not counted) and per-image latency, then prints a table per workload, ratios
against `raw-libvips` and `thumbor`, and writes the same as JSON to `bench/results/latest.json`.
"""
