"""glibc's malloc kept from holding on to freed memory over a long run (issue 17).

Python's small objects live in pymalloc's 1 MiB arenas; everything larger than 512 bytes
(a target's kept exposition lines, hash tables, the scrape's per-family text and bytes, zlib's
buffers in the gzip thread) comes from the C library's malloc. A scrape at 10,000 targets
builds and frees tens of megabytes of such blocks every 15 s, and glibc's defaults keep
them: once a block from mmap is freed, the threshold above which blocks come from mmap rises to
its size (up to 32 MiB), so the next scrapes' blocks come from the heap, interleave with
long-lived ones and leave holes that the heap cannot give back, and a worker thread's arena
keeps its own. RSS then creeps up scrape after scrape with no object alive to show for it.

`tune()` (at start-up) fixes the mmap threshold at 256 KiB, so the scrape's large temporaries
always go back to the system when freed; `trim()` (after each gzipped scrape, in the worker
thread) gives back the free pages inside the heaps (malloc_trim(0) releases whole free pages
anywhere in them, not only at the top). Both do nothing on a C library without them (musl), or
when NETMON_MALLOC=default (glibc's own MALLOC_* variables then apply as usual).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

ENV = "NETMON_MALLOC"  # "default": leave the C library's malloc as it is
M_MMAP_THRESHOLD = -3  # mallopt(3)'s parameter number in glibc's malloc.h
MMAP_THRESHOLD = 256 * 1024


@dataclass(frozen=True, slots=True)
class Libc:
    """The two glibc calls used, as plain callables (a test passes its own)."""

    mallopt: Callable[[int, int], int]
    malloc_trim: Callable[[int], int]


def glibc(environ: dict[str, str] | None = None) -> Libc | None:
    """This process's glibc malloc controls; None without them or when told to leave it."""
    env = os.environ if environ is None else environ
    if env.get(ENV, "").strip().lower() == "default":
        return None
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        malloc_trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    malloc_trim.argtypes = [ctypes.c_size_t]
    malloc_trim.restype = ctypes.c_int
    return Libc(
        mallopt=cast(Callable[[int, int], int], mallopt),
        malloc_trim=cast(Callable[[int], int], malloc_trim),
    )


_libc: Libc | None = None


def tune(libc: Libc | None = None) -> bool:
    """Fix the mmap threshold (`MMAP_THRESHOLD`); whether it was set. Later `trim()` calls use
    the same C library."""
    global _libc
    _libc = libc if libc is not None else glibc()
    if _libc is None:
        return False
    return _libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1


def trim() -> bool:
    """Give the heaps' free pages back to the system (after `tune()`); whether any were."""
    return _libc is not None and _libc.malloc_trim(0) == 1
