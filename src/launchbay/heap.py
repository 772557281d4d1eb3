"""The process's C heap (glibc): fewer arenas, and free pages given back.

glibc gives each thread that allocates its own arena (up to 8 per core) and keeps freed memory
in them; a control plane with a dozen threads then stays at the peak of its last burst of
deploys. Two arenas and a trim after each piece of work keep its resident memory near its
idle size. Elsewhere than glibc, both do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_ARENA_MAX = -8



def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_libc = _glibc()


def limit_arenas(count: int = 2) -> None:
    """At most `count` malloc arenas (call before threads start)."""
    if _libc is not None:
        _libc.mallopt(M_ARENA_MAX, count)


def trim() -> None:
    """Returns the heap's free pages to the system."""
    if _libc is not None:
        _libc.malloc_trim(0)
