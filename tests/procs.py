"""Processes by their family, from /proc (Linux): for tests and benchmarks that must tell a
server's own engine process from those of other servers running beside it."""

from __future__ import annotations

from pathlib import Path


def parent_of(pid: int) -> int:
    # /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces, never ")".
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def process_tree(root: int) -> list[int]:
    """``root`` and its running descendants, in pid order."""
    parents: dict[int, int] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                parents[int(proc.name)] = parent_of(int(proc.name))
            except (OSError, IndexError):
                continue  # gone
    members = {root}
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in members and pid not in members:
                members.add(pid)
                grew = True
    return sorted(members)
