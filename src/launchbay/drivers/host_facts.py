"""Facts about the machine launchbay runs on, read from /proc and /sys (no extra tools):
memory, filesystems, block devices, and what the kernel and CPU are."""

from __future__ import annotations

import os
import platform
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

# Filesystems that are not storage (df leaves them out too).
PSEUDO = {"proc", "sysfs", "devtmpfs", "devpts", "tmpfs", "cgroup", "cgroup2", "mqueue",
          "securityfs", "debugfs", "tracefs", "pstore", "bpf", "autofs", "hugetlbfs",
          "configfs", "fusectl", "binfmt_misc", "nsfs", "rpc_pipefs", "efivarfs", "ramfs",
          "squashfs", "shm", "nfsd", "selinuxfs", "fuse.lxcfs"}
CONTAINER_MOUNTS = ("/var/lib/docker/", "/run/docker/", "/var/lib/containerd/")
ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}


def human(size: float) -> str:
    """Bytes in binary units, like `free -h` and `df -h` (7.5Gi, 512Mi, 0B)."""
    for unit in ("B", "Ki", "Mi", "Gi", "Ti", "Pi"):
        if abs(size) < 1024 or unit == "Pi":
            break
        size /= 1024
    if unit == "B":
        return f"{int(size)}B"
    return f"{size:.1f}{unit}" if abs(size) < 10 else f"{int(size)}{unit}"


def memory() -> dict[str, int]:
    """Bytes of memory and swap: total, available, used, free, swapTotal, swapUsed."""
    values = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, _, rest = line.partition(":")
            values[key] = int(rest.split()[0]) * 1024
    total, available = values["MemTotal"], values.get("MemAvailable", values["MemFree"])
    swap_total = values.get("SwapTotal", 0)
    return {"total": total, "available": available, "used": total - available,
            "free": values["MemFree"], "swapTotal": swap_total,
            "swapUsed": swap_total - values.get("SwapFree", 0)}


@dataclass
class Machine:
    os: str
    arch: str
    cpu_count: int
    hostname: str
    kernel: str


def machine() -> Machine:
    uname = os.uname()
    return Machine(os=platform.system().lower(), arch=ARCH.get(uname.machine, uname.machine),
                   cpu_count=os.cpu_count() or 1, hostname=socket.gethostname(),
                   kernel=f"{uname.sysname} {uname.release}")


def _mounts() -> list[tuple[str, str, str]]:
    """(device, mount point, filesystem type) of every mount."""
    found = []
    with open("/proc/self/mounts") as f:
        for line in f:
            device, mountpoint, fstype = line.split()[:3]
            found.append((device, mountpoint.replace("\\040", " "), fstype))
    return found


@dataclass
class Partition:
    filesystem: str
    size: int
    used: int
    available: int
    mountpoint: str

    @property
    def use_percent(self) -> int:
        return round(100 * self.used / (self.used + self.available)) if self.size else 0


def partitions() -> list[Partition]:
    """Mounted storage, one entry per filesystem (its shortest mount point), like `df`;
    containers' root filesystems are left out."""
    found: dict[str, Partition] = {}
    for device, mountpoint, fstype in _mounts():
        if fstype in PSEUDO or mountpoint.startswith(CONTAINER_MOUNTS) or (device in found and
                                len(found[device].mountpoint) <= len(mountpoint)):
            continue
        try:
            usage = shutil.disk_usage(mountpoint)
        except OSError:
            continue
        if usage.total:
            found[device] = Partition(device, usage.total, usage.used, usage.free, mountpoint)
    return sorted(found.values(), key=lambda p: p.mountpoint)


@dataclass
class Device:
    name: str
    size: int
    type: str
    mountpoints: list[str]


def devices(sys_block: Path = Path("/sys/block")) -> list[Device]:
    """Block devices and their partitions, like `lsblk` (empty ones left out)."""
    mounted: dict[str, list[str]] = {}
    for device, mountpoint, _ in _mounts():
        if device.startswith("/dev/"):
            mounted.setdefault(device[5:], []).append(mountpoint)

    def size(path: Path) -> int:
        try:
            return int((path / "size").read_text()) * 512
        except (OSError, ValueError):
            return 0

    found = []
    for disk in sorted(sys_block.iterdir()) if sys_block.is_dir() else []:
        kind = ("loop" if disk.name.startswith("loop") else "rom" if disk.name.startswith("sr")
                else "ram" if disk.name.startswith(("ram", "zram")) else "disk")
        if size(disk):
            found.append(Device(disk.name, size(disk), kind, mounted.get(disk.name, [])))
        for part in sorted(p for p in disk.iterdir() if (p / "partition").exists()):
            found.append(Device(part.name, size(part), "part", mounted.get(part.name, [])))
    return found


# What `remote()` reads of another machine, as one shell command over SSH (POSIX tools only).
REMOTE_PROBE = r"""echo "cores $(nproc)"
echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
grep -E '^(MemTotal|MemAvailable|MemFree):' /proc/meminfo
for p in /var/lib/docker /; do
  [ -e "$p" ] || continue
  df -P -B1 "$p" | awk -v p="$p" 'NR==2 {print "disk", p, $2, $3, $4}'
  df -P -i "$p" | awk -v p="$p" 'NR==2 {print "inodes", p, $2, $3, $4}'
done"""


def remote(said: str) -> dict:
    """The facts `REMOTE_PROBE` printed: cores, load (1, 5, 15 min), memory (as `memory()`),
    disks and inodes ((path, total, used, free) each)."""
    facts: dict = {"cores": None, "load": (0.0, 0.0, 0.0), "disks": [], "inodes": []}
    meminfo: dict[str, int] = {}
    for line in said.splitlines():
        word, _, rest = line.partition(" ")
        fields = rest.split()
        if word == "cores" and fields:
            facts["cores"] = int(fields[0])
        elif word == "load" and len(fields) == 3:
            facts["load"] = tuple(float(f) for f in fields)
        elif word.endswith(":") and fields:
            meminfo[word[:-1]] = int(fields[0]) * 1024
        elif word in ("disk", "inodes") and len(fields) == 4 and fields[1].isdigit():
            facts["disks" if word == "disk" else "inodes"].append(
                (fields[0], *(int(f) for f in fields[1:])))
    total = meminfo.get("MemTotal", 0)
    available = meminfo.get("MemAvailable", meminfo.get("MemFree", 0))
    facts["memory"] = {"total": total, "available": available, "used": total - available}
    return facts
