"""Measuring the peak memory of a block of code, for the benchmark scripts."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import psutil


@contextmanager
def peak_memory(record: dict, key: str, baseline: int):
    """Record the block's wall time and its peak resident memory above ``baseline`` (bytes).

    The resident set is sampled every 5 ms by a thread; figures go to ``record[f"{key} (s)"]``
    and ``record[f"{key} peak (MB)"]`` (above ``baseline``).
    """
    process, peak, running = psutil.Process(), [0], [True]

    def sample():
        while running[0]:
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    try:
        yield
    finally:
        record[f"{key} (s)"] = time.perf_counter() - start
        running[0] = False
        sampler.join()
        record[f"{key} peak (MB)"] = (max(peak[0], process.memory_info().rss) - baseline) / 2**20
