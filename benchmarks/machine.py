"""What the numbers were measured on: machine, versions, and how busy the machine was."""

from __future__ import annotations

import os
import platform
import time
from importlib.metadata import PackageNotFoundError, version
from typing import Any

PACKAGES = (
    "koherent",
    "Django",
    "django-simple-history",
    "django-auditlog",
    "django-reversion",
    "django-pghistory",
    "django-pgtrigger",
    "django-guid",
    "celery",
    "kombu",
    "redis",
    "psycopg",
    "strawberry-graphql",
    "strawberry-graphql-django",
)


def versions() -> dict[str, str]:
    found: dict[str, str] = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> float | None:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def describe(postgres_version: str, redis_version: str | None) -> dict[str, Any]:
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "postgresql": postgres_version,
        "redis": redis_version or "not reached",
    }


def _cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    try:
        with open("/proc/stat") as handle:
            fields = [int(v) for v in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return total - idle, total


class LoadMeter:
    """How busy the machine was while a scenario ran, and how much of it was the scenario.

    ``machine_busy`` is the share of all cores in use (anything: the benchmark, its database
    and worker, other people's jobs); ``benchmark_busy`` the share used by the benchmark's own
    processes (the scenario process and the workers it waited for, not the database server).
    """

    def __init__(self) -> None:
        self._start_wall = time.monotonic()
        self._start_cpu = _cpu_jiffies()
        self._start_self = self._own_cpu()
        self._start_load = os.getloadavg()

    @staticmethod
    def _own_cpu() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def stop(self) -> dict[str, Any]:
        wall = max(time.monotonic() - self._start_wall, 1e-9)
        end_cpu = _cpu_jiffies()
        cores = os.cpu_count() or 1
        result: dict[str, Any] = {
            "seconds": round(wall, 1),
            "loadavg_start": round(self._start_load[0], 2),
            "loadavg_end": round(os.getloadavg()[0], 2),
            "benchmark_busy": round((self._own_cpu() - self._start_self) / wall / cores, 3),
        }
        if self._start_cpu is not None and end_cpu is not None:
            busy = end_cpu[0] - self._start_cpu[0]
            total = end_cpu[1] - self._start_cpu[1]
            result["machine_busy"] = round(busy / total, 3) if total else None
        return result
