"""Reading and rewriting an accelerated program's archive (a zip of header.json and .npy
arrays), for tests that hand mlrepro hostile programs."""

from __future__ import annotations

import io
import zipfile

import numpy as np


def program_members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def program_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def npy(arr: np.ndarray, allow_pickle: bool = False) -> bytes:
    """``arr`` as .npy bytes (``allow_pickle``: an object array, for hostile programs)."""
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()
