"""Packing a folder for upload: what git would commit (`.gitignore` respected) when the folder
is a repository, else every file; then `.dockerignore` patterns are left out too."""

from __future__ import annotations

import fnmatch
import io
import subprocess
import tarfile
from pathlib import Path

ALWAYS_LEFT_OUT = {".git", "node_modules", "__pycache__", ".venv"}


def files_of(folder: Path) -> list[str]:
    listed = subprocess.run(["git", "-C", str(folder), "ls-files", "-co", "--exclude-standard"],
                            capture_output=True, text=True)
    if listed.returncode == 0:
        names = [n for n in listed.stdout.splitlines() if (folder / n).is_file()]
    else:
        names = [str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()
                 and not ALWAYS_LEFT_OUT & set(p.relative_to(folder).parts)]
    ignore = folder / ".dockerignore"
    if ignore.is_file():
        patterns = [line.strip().rstrip("/") for line in ignore.read_text().splitlines()
                    if line.strip() and not line.startswith("#")]
        names = [n for n in names if not any(
            fnmatch.fnmatch(n, p) or fnmatch.fnmatch(n.split("/")[0], p) for p in patterns)]
    return sorted(names)


def pack(folder: Path) -> bytes:
    """A tar.gz of the folder's files, paths relative to the folder."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in files_of(folder):
            tar.add(folder / name, arcname=name, recursive=False)
    return buffer.getvalue()
