"""The live processes of this machine, read from /proc: what the grading tests check is left behind.

Imported by name (pytest puts ``tests/`` on the path), like ``verifier_helpers``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator


@dataclasses.dataclass(frozen=True)
class Process:
    """One process, as /proc/<pid>/stat and the owner of /proc/<pid> showed it when it was listed."""

    pid: int
    state: str
    ppid: int
    pgid: int
    uid: int

    def cmdline(self) -> str:
        """Its command line, arguments joined by spaces (OSError once it is gone)."""
        with open(f"/proc/{self.pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")

    def environ(self) -> bytes:
        """Its environment as the kernel keeps it, NUL-separated (OSError once it is gone)."""
        with open(f"/proc/{self.pid}/environ", "rb") as handle:
            return handle.read()

    def cwd(self) -> str:
        return os.readlink(f"/proc/{self.pid}/cwd")


def live_processes() -> Iterator[Process]:
    """Every process that is not a zombie; one that ends while it is read is left out."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                fields = handle.read().rpartition(b")")[2].split()
            uid = os.stat(f"/proc/{name}").st_uid
            process = Process(int(name), fields[0].decode(), int(fields[1]), int(fields[2]), uid)
        except (OSError, IndexError, ValueError):
            continue
        if process.state not in ("Z", "X"):
            yield process
