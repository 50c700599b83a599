"""``python -m benchmarks``: prepare the databases, run each scenario in its own process, report.

::

    python -m benchmarks                      # every scenario, full size (make bench)
    python -m benchmarks --size tiny --out-dir /tmp/bench --no-readme   # the CI smoke run
    python -m benchmarks --only write,bulk    # some scenarios

The full size writes ``benchmarks/results.md``, ``benchmarks/results.json`` and the Performance
table of ``README.md``; other sizes write only to ``--out-dir``.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import databases, machine, report
from benchmarks.scenarios import BY_ID, SCENARIOS

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
SCENARIO_TIMEOUT = {"full": 3 * 3600, "tiny": 300}


def _log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def schema_fingerprint() -> str:
    """Changes when the contenders' tables may change: their code, Koherent's models, versions."""
    digest = hashlib.sha256()
    sources = [*sorted((HERE / "contenders").rglob("*.py")), HERE / "settings.py"]
    sources += sorted((ROOT / "koherent" / "migrations").glob("*.py"))
    sources += [ROOT / "koherent" / "models.py", ROOT / "koherent" / "fields.py"]
    for path in sources:
        if path.exists():
            digest.update(str(path.relative_to(ROOT)).encode())
            digest.update(path.read_bytes())
    digest.update(json.dumps(machine.versions(), sort_keys=True).encode())
    return digest.hexdigest()[:16]


def _child(args: list[str], database: str, timeout: float, quiet: bool = False) -> None:
    """Run ``benchmarks.child`` on ``database``; ``quiet`` shows its output only on failure."""
    env = {**os.environ, "KOHERENT_BENCH_DB": database, "PYTHONPATH": str(ROOT)}
    env["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
    try:
        subprocess.run(
            [sys.executable, "-m", "benchmarks.child", *args],
            cwd=ROOT,
            env=env,
            check=True,
            timeout=timeout,
            capture_output=quiet,
            text=True,
        )
    except subprocess.CalledProcessError as exc:
        if quiet:
            print(exc.stdout, exc.stderr, sep="\n", file=sys.stderr)
        raise


def _read_meta(database: str) -> str | None:
    import psycopg

    try:
        with psycopg.connect(**databases._connect_kwargs(database)) as conn:
            row = conn.execute("SELECT value FROM bench_meta WHERE key = 'schema'").fetchone()
    except psycopg.Error:
        return None
    return None if row is None else str(row[0])


def _write_meta(database: str, fingerprint: str) -> None:
    import psycopg

    with psycopg.connect(**databases._connect_kwargs(database), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_meta (key text PRIMARY KEY, value text)")
        conn.execute(
            "INSERT INTO bench_meta VALUES ('schema', %s) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            [fingerprint],
        )


def prepare_databases(size: str, need_data: bool, rebuild_data: bool) -> dict[str, str]:
    """A freshly migrated run database, and the data database when its schema is current."""
    run_db = databases.database_name("run", size)
    data_db = databases.database_name("data", size)
    _log(f"creating and migrating {run_db}")
    databases.drop(run_db)
    databases.create(run_db)
    _child(["prepare"], run_db, timeout=600, quiet=True)
    if need_data:
        fingerprint = schema_fingerprint()
        current = databases.exists(data_db) and _read_meta(data_db) == fingerprint
        if rebuild_data or not current:
            _log(f"creating {data_db} (a copy of {run_db}; its data is built once and kept)")
            databases.drop(data_db)
            databases.create(data_db, template=run_db)
            _write_meta(data_db, fingerprint)
        else:
            _log(f"reusing {data_db}")
    return {"run": run_db, "data": data_db}


def _redis_version() -> str | None:
    try:
        import redis

        url = os.environ.get("KOHERENT_REDIS_URL", "redis://127.0.0.1:6379/0")
        info = redis.Redis.from_url(url, socket_timeout=2).info("server")
        return str(info.get("redis_version"))
    except Exception:
        return None


def run_scenario(scenario_id: str, size: str, database: str) -> dict[str, Any]:
    meter = machine.LoadMeter()
    with tempfile.TemporaryDirectory(prefix="koherent-bench-") as tmp:
        out = Path(tmp) / f"{scenario_id}.json"
        try:
            _child(
                ["scenario", scenario_id, "--size", size, "--out", str(out)],
                database,
                timeout=SCENARIO_TIMEOUT.get(size, 3600),
            )
            result: dict[str, Any] = json.loads(out.read_text())
            result.setdefault("status", "ok")
        except subprocess.CalledProcessError as exc:
            result = {"status": "failed", "reason": f"exit status {exc.returncode}"}
        except subprocess.TimeoutExpired:
            result = {"status": "failed", "reason": "timed out"}
    result.setdefault("title", BY_ID[scenario_id].title)
    result["load"] = meter.stop()
    return result


def _keep_other_scenarios(path: Path, results: dict[str, Any]) -> None:
    """With ``--only``, keep the other scenarios of an earlier run of the same size."""
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if earlier.get("size") != results["size"]:
        return
    merged = {**earlier.get("scenarios", {}), **results["scenarios"]}
    results["scenarios"] = {s.id: merged[s.id] for s in SCENARIOS if s.id in merged}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--size", choices=["full", "tiny"], default="full")
    parser.add_argument("--only", help="comma-separated scenario ids (default: all)")
    parser.add_argument("--out-dir", type=Path, help="where results.md/json go")
    parser.add_argument("--readme", type=Path, help="README whose Performance table to update")
    parser.add_argument("--no-readme", action="store_true", help="leave the README alone")
    parser.add_argument("--rebuild-data", action="store_true", help="rebuild the kept data set")
    parser.add_argument("--keep-databases", action="store_true", help="do not drop tiny DBs")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SCENARIO.KEY=N",
        help="override one size (e.g. write.saves=2000); results then say so",
    )
    args = parser.parse_args(argv)
    overrides: dict[str, dict[str, int]] = {}
    for item in args.set:
        key, _, value = item.partition("=")
        scenario_id, _, name = key.partition(".")
        if scenario_id not in BY_ID or not name or not value.isdigit():
            parser.error(f"--set takes SCENARIO.KEY=NUMBER, not {item!r}")
        overrides.setdefault(scenario_id, {})[name] = int(value)
    if overrides:
        os.environ["KOHERENT_BENCH_OVERRIDES"] = json.dumps(overrides)

    selected = [s.id for s in SCENARIOS]
    if args.only:
        selected = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = [name for name in selected if name not in BY_ID]
        if unknown:
            parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(BY_ID)}")
    out_dir: Path = args.out_dir or (HERE if args.size == "full" else Path("bench-results"))
    readme: Path | None = None
    if not args.no_readme and (args.readme is not None or args.size == "full"):
        readme = args.readme or ROOT / "README.md"

    need_data = any(BY_ID[s].database == "data" for s in selected)
    dbs = prepare_databases(args.size, need_data, args.rebuild_data)
    results: dict[str, Any] = {
        "generated": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "size": args.size,
        "overrides": overrides,
        "machine": machine.describe(databases.server_version(), _redis_version()),
        "versions": machine.versions(),
        "scenarios": {},
    }
    meter = machine.LoadMeter()
    try:
        for scenario_id in selected:
            _log(f"scenario {scenario_id}")
            database = dbs[BY_ID[scenario_id].database]
            result = run_scenario(scenario_id, args.size, database)
            result["measured"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
            results["scenarios"][scenario_id] = result
            _log(f"scenario {scenario_id}: {results['scenarios'][scenario_id]['status']}")
    finally:
        results["load"] = meter.stop()
        if args.size == "tiny" and not args.keep_databases:
            for name in dbs.values():
                databases.drop(name)

    out_dir.mkdir(parents=True, exist_ok=True)
    if args.only:
        _keep_other_scenarios(out_dir / "results.json", results)
    (out_dir / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    (out_dir / "results.md").write_text(report.markdown(results))
    _log(f"wrote {out_dir / 'results.md'} and results.json")
    if readme is not None:
        report.update_readme(readme, results)
        _log(f"updated the Performance table of {readme}")
    failed = [k for k, v in results["scenarios"].items() if v.get("status") == "failed"]
    if failed:
        _log(f"failed: {', '.join(failed)}")
        return 1
    return 0
