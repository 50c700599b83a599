#!/usr/bin/env python3
"""The Koherent demo (``make demo``): one assignation, from a GraphQL request through Celery
workers to its history and its undo, on a real server and a real worker.

1. migrates the example's database and seeds its catalog;
2. starts a Celery worker (``celery -A example worker``) and the web app under uvicorn
   (``example.asgi:application``) on a free loopback port;
3. logs in over GraphQL and sends a ``placeOrder`` mutation with an ``X-Assignation-ID``
   header: the request creates an order and its lines, and sends a chord (reserve the stock of
   each line, then confirm) chained to a shipping task;
4. waits for the worker to change the records, prints the assignation's history (the request's
   and the tasks' changes together), reverts the assignation over GraphQL, and checks that the
   records are back as they were.

Embedded defaults: SQLite and kombu's filesystem transport, in a temporary folder. With
``DATABASE_URL`` and ``CELERY_BROKER_URL`` (PostgreSQL, Redis) it runs on those instead. Exits
with status 1 when a step fails, after stopping the processes it started.
"""

from __future__ import annotations

import argparse
import contextlib
import http.cookiejar
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

EXAMPLES = Path(__file__).resolve().parent
USERNAME, PASSWORD = "alice", "koherent"
CLIENT_APP = "demo-client"
#: How long to wait for the server, the worker and the tasks (``--timeout``).
TIMEOUT = 45.0


class StepFailed(Exception):
    """A step of the demo did not do what it should."""


def say(text: str = "") -> None:
    print(text, flush=True)


def heading(number: int, text: str) -> None:
    say()
    say(f"{number}. {text}")
    say("-" * (len(text) + 3))


def ok(text: str) -> None:
    say(f"   ok: {text}")


def table(rows: list[dict[str, str]], columns: list[str], indent: str = "   ") -> None:
    """Print rows as a plain-text table (the last column wraps)."""
    wrap = 64
    widths = {c: len(c) for c in columns}
    for row in rows:
        for c in columns[:-1]:
            widths[c] = max(widths[c], len(row.get(c, "")))
    last = columns[-1]
    widths[last] = max(len(last), *(min(wrap, len(r.get(last, ""))) for r in rows), 0)

    def line(values: dict[str, str]) -> str:
        return indent + "  ".join(values.get(c, "").ljust(widths[c]) for c in columns).rstrip()

    say(line({c: c for c in columns}))
    say(indent + "  ".join("-" * widths[c] for c in columns))
    for row in rows:
        parts = textwrap.wrap(row.get(last, ""), wrap, break_on_hyphens=False) or [""]
        say(line({**row, last: parts[0]}))
        pad = indent + " " * (sum(widths[c] + 2 for c in columns[:-1]))
        for part in parts[1:]:
            say(pad + part)


# -- processes ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Processes:
    """The worker and the server: started with their output in log files, always stopped."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.running: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=EXAMPLES,
            env=self.env,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise StepFailed(f"manage.py {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result.stdout.strip()

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = self.logs / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, *args],
                cwd=EXAMPLES,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # stopped as a group, never by a stray Ctrl-C
            )
        self.running.append((name, process, log))
        return process

    def log(self, name: str) -> str:
        for known, _, path in self.running:
            if known == name:
                return path.read_text(errors="replace")
        return ""

    def check_alive(self) -> None:
        for name, process, _ in self.running:
            if process.poll() is not None:
                raise StepFailed(f"the {name} exited with status {process.returncode}")

    def wait_for_log(self, name: str, marker: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while marker not in self.log(name):
            self.check_alive()
            if time.monotonic() > deadline:
                raise StepFailed(f"the {name} did not log {marker!r} within {timeout:.0f} s")
            time.sleep(0.2)

    def stop(self) -> None:
        for _, process, _ in reversed(self.running):
            if process.poll() is None:
                process.terminate()  # the worker's warm shutdown stops its pool itself
        for _, process, _ in reversed(self.running):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            with contextlib.suppress(ProcessLookupError):  # anything it left behind
                os.killpg(process.pid, signal.SIGKILL)

    def tails(self, lines: int = 25) -> str:
        out = []
        for name, _, path in self.running:
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- last lines of the {name} log ({path.name}) ---")
            out.extend(text)
        return "\n".join(out)


# -- the GraphQL client -------------------------------------------------------------------


class Client:
    """GraphQL over HTTP with a session cookie and Django's CSRF token, as a browser would."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.cookies if c.name == name), None)

    def get(self, path: str, accept: str = "text/html") -> tuple[int, str]:
        request = urllib.request.Request(self.base_url + path, headers={"Accept": accept})
        try:
            with self.opener.open(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def graphql(
        self, query: str, variables: dict[str, Any] | None = None, **headers: str
    ) -> tuple[dict[str, Any], dict[str, str]]:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            self.base_url + "/graphql/",
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                "X-CSRFToken": self.cookie("csrftoken") or "",
                **{name.replace("_", "-"): value for name, value in headers.items()},
            },
        )
        try:
            with self.opener.open(request, timeout=30) as response:
                payload = json.loads(response.read())
                response_headers = dict(response.headers.items())
        except urllib.error.HTTPError as exc:
            raise StepFailed(
                f"HTTP {exc.code} from /graphql/: {exc.read().decode(errors='replace')[:500]}"
            ) from None
        if payload.get("errors"):
            raise StepFailed(f"GraphQL errors: {json.dumps(payload['errors'], indent=2)}")
        data: dict[str, Any] = payload["data"]
        return data, response_headers


PRODUCTS_QUERY = "{ products { sku name stock } }"
ORDER_QUERY = """
query Order($pk: ID!) {
  order(pk: $pk) {
    id customer status total trackingNumber
    lines { product { sku } quantity reserved }
  }
}
"""
PLACE_ORDER = """
mutation PlaceOrder($customer: String!, $lines: [LineInput!]!) {
  placeOrder(customer: $customer, lines: $lines) {
    __typename
    ... on OrderType { id status total lines { product { sku } quantity reserved } }
    ... on OperationInfo { messages { message } }
  }
}
"""
HISTORY_QUERY = """
query History($id: ID!) {
  assignation(id: $id) {
    id origin app user { username } changeCount
    changes(first: 100) {
      entries {
        date kind modelLabel objectId app taskId user { username }
        changes { field oldValue newValue }
      }
    }
  }
}
"""
REVERT = """
mutation Revert($id: ID!) {
  revertAssignation(id: $id) {
    __typename
    ... on RevertResult { summary revertAssignationId deleted restored recreated }
    ... on RevertConflictError { message }
    ... on AlreadyRevertedError { message }
    ... on AssignationNotFoundError { message }
    ... on RevertFailedError { message }
  }
}
"""


# -- the story ----------------------------------------------------------------------------


def describe_backends(env: dict[str, str]) -> tuple[str, str]:
    database_url = env.get("DATABASE_URL")
    if database_url:
        parsed = urlparse(database_url)
        database = f"{parsed.scheme} {parsed.hostname}:{parsed.port or ''}{parsed.path}"
    else:
        database = "SQLite (embedded)"
    broker_url = env.get("CELERY_BROKER_URL")
    broker = broker_url if broker_url else "kombu filesystem transport (embedded)"
    return database, broker


def ensure_postgres_database(url: str) -> None:
    """Create the database ``DATABASE_URL`` names when the server does not have it yet."""
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    params = {
        "host": parsed.hostname or "127.0.0.1",
        "port": parsed.port or 5432,
        "user": parsed.username or "postgres",
        "password": parsed.password or None,
        "connect_timeout": 5,
    }
    try:
        with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
            query = "SELECT 1 FROM pg_database WHERE datname = %s"
            if conn.execute(query, [name]).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{name}"')
                say(f"   created the database {name}")
    except psycopg.Error as exc:
        where = f"{parsed.hostname}:{parsed.port}"
        raise StepFailed(f"cannot reach PostgreSQL at {where}: {exc}") from None


def show_products(client: Client) -> dict[str, int]:
    data, _ = client.graphql(PRODUCTS_QUERY)
    products = sorted(data["products"], key=lambda p: p["sku"])
    table(
        [{"sku": p["sku"], "name": p["name"], "stock": str(p["stock"])} for p in products],
        ["sku", "name", "stock"],
    )
    return {p["sku"]: p["stock"] for p in products}


def show_order(order: dict[str, Any]) -> None:
    say(
        f"   order {order['id']}: customer {order['customer']}, status {order['status']}, "
        f"total {order['total']}, tracking {order['trackingNumber'] or '-'}"
    )
    for line in order["lines"]:
        reserved = "reserved" if line["reserved"] else "not reserved"
        say(f"     {line['quantity']} x {line['product']['sku']} ({reserved})")


def describe_changes(kind: str, changes: list[dict[str, Any]]) -> str:
    def text(value: Any) -> str:
        return "null" if value is None else json.dumps(value) if value == "" else str(value)

    if kind == "CREATE":
        return ", ".join(f"{c['field']}={text(c['newValue'])}" for c in changes)
    if kind == "DELETE":
        return "(deleted)"
    return ", ".join(
        f"{c['field']}: {text(c['oldValue'])} -> {text(c['newValue'])}" for c in changes
    )


def run_story(processes: Processes, env: dict[str, str], timeout: float) -> None:
    started = time.monotonic()
    database, broker = describe_backends(env)
    say("Koherent demo: one assignation, from a GraphQL request through Celery workers to its")
    say("history and its undo.")
    say(f"   database: {database}")
    say(f"   broker:   {broker}")

    heading(1, "Set up the example project (examples/)")
    if env.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        ensure_postgres_database(env["DATABASE_URL"])
    processes.manage("migrate", "--no-input", "-v", "0")
    ok("manage.py migrate")
    say("   " + processes.manage("seed"))

    heading(2, "Start a Celery worker and the web app")
    processes.start(
        "worker",
        "-m",
        "celery",
        "-A",
        "example",
        "worker",
        "--loglevel=INFO",
        "--concurrency=2",
        "--hostname=demo@%h",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    )
    port = free_port()
    processes.start(
        "web",
        "-m",
        "uvicorn",
        "example.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--lifespan",
        "off",
    )
    client = Client(f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + timeout
    while True:
        processes.check_alive()
        try:
            status, page = client.get("/graphql/")
            break
        except OSError:
            if time.monotonic() > deadline:
                raise StepFailed(f"the web app did not answer on port {port}") from None
            time.sleep(0.2)
    if status != 200 or "graphiql" not in page.lower():
        raise StepFailed(f"GET /graphql/ answered {status}, not the GraphiQL page")
    ok(f"uvicorn serves example.asgi:application; GraphiQL at {client.base_url}/graphql/")
    processes.wait_for_log("worker", " ready.", timeout)
    ok("celery -A example worker is consuming the queue")

    heading(3, "Log in, and look at the products")
    data, _ = client.graphql(
        "mutation Login($u: String!, $p: String!) { login(username: $u, password: $p) "
        "{ username } }",
        {"u": USERNAME, "p": PASSWORD},
    )
    ok(f"logged in as {data['login']['username']} (a session cookie, as a browser would)")
    before = show_products(client)

    assignation_id = f"demo-{uuid.uuid4()}"
    heading(4, "A GraphQL mutation over HTTP, under an assignation the client names")
    lines = [{"sku": "MUG", "quantity": 2}, {"sku": "TEE", "quantity": 1}]
    say(f"   POST /graphql/  X-Assignation-ID: {assignation_id}")
    say(f"                   X-Koherent-App: {CLIENT_APP}")
    say(f'   placeOrder(customer: "Ada", lines: {json.dumps(lines)})')
    data, headers = client.graphql(
        PLACE_ORDER,
        {"customer": "Ada", "lines": lines},
        X_Assignation_ID=assignation_id,
        X_Koherent_App=CLIENT_APP,
    )
    placed = data["placeOrder"]
    if placed["__typename"] != "OrderType":
        raise StepFailed(f"placeOrder refused: {placed}")
    echoed = {k.lower(): v for k, v in headers.items()}.get("x-assignation-id")
    if echoed != assignation_id:
        raise StepFailed(f"the response names assignation {echoed!r}, not {assignation_id!r}")
    order_id = placed["id"]
    ok(
        f"the request created order {order_id} ({placed['status']}, total {placed['total']}) "
        f"and {len(placed['lines'])} lines, updated the order's total, and sent the workflow"
    )
    ok(f"the response header echoes X-Assignation-ID: {echoed}")

    heading(
        5, "The worker changes more records (chord: reserve each line, then confirm; then ship)"
    )
    seen: list[str] = [placed["status"]]
    deadline = time.monotonic() + timeout
    while True:
        data, _ = client.graphql(ORDER_QUERY, {"pk": order_id})
        order = data["order"]
        if order["status"] != seen[-1]:
            seen.append(order["status"])
        if order["status"] == "shipped":
            break
        processes.check_alive()
        if time.monotonic() > deadline:
            raise StepFailed(f"order {order_id} is still {order['status']!r} after the workers")
        time.sleep(0.3)
    if not all(line["reserved"] for line in order["lines"]):
        raise StepFailed("the order shipped with lines not reserved")
    say(f"   status seen by polling the API: {' -> '.join(seen)}")
    show_order(order)
    after_workers = show_products(client)
    expected = dict(before)
    for line in lines:
        expected[line["sku"]] -= line["quantity"]
    if after_workers != expected:
        raise StepFailed(f"stock after the workers is {after_workers}, expected {expected}")
    ok("the worker reserved the stock, confirmed and shipped the order")

    heading(6, f"The history of assignation {assignation_id}")
    data, _ = client.graphql(HISTORY_QUERY, {"id": assignation_id})
    record = data["assignation"]
    if record is None:
        raise StepFailed("the assignation has no history")
    entries = record["changes"]["entries"]
    rows = []
    for entry in entries:
        task = entry["taskId"]
        rows.append(
            {
                "time": entry["date"][11:23],
                "model": entry["modelLabel"].rsplit(".", 1)[-1],
                "object": str(entry["objectId"]),
                "action": {"CREATE": "created", "UPDATE": "updated", "DELETE": "deleted"}[
                    entry["kind"]
                ],
                "user": (entry["user"] or {}).get("username", "-"),
                "app": entry["app"] or "-",
                "task": task[:8] if task else "(request)",
                "changed fields": describe_changes(entry["kind"], entry["changes"]),
            }
        )
    table(rows, ["time", "model", "object", "action", "user", "app", "task", "changed fields"])
    by_request = [e for e in entries if not e["taskId"]]
    by_tasks = [e for e in entries if e["taskId"]]
    tasks = {e["taskId"] for e in by_tasks}
    say(
        f"   origin {record['origin']}, app {record['app']}, user "
        f"{(record['user'] or {}).get('username')}: {record['changeCount']} changes, "
        f"{len(by_request)} by the request and {len(by_tasks)} by {len(tasks)} Celery tasks"
    )
    if not by_request or len(tasks) < 4:  # two reservations, the chord's callback, shipping
        raise StepFailed("the history lacks the request's or the tasks' changes")
    strangers = [e for e in entries if (e["user"] or {}).get("username") != USERNAME]
    if strangers or any(e["app"] != CLIENT_APP for e in entries):
        raise StepFailed("some changes are not stamped with the request's user and app")
    ok("the request's and the workers' changes, under one assignation, user and app")

    heading(7, "Revert the assignation (revertAssignation over GraphQL)")
    data, _ = client.graphql(REVERT, {"id": assignation_id})
    outcome = data["revertAssignation"]
    if outcome["__typename"] != "RevertResult":
        raise StepFailed(f"revert refused: {outcome}")
    say(f"   {outcome['summary']}")
    ok(f"the revert ran as assignation {outcome['revertAssignationId']} (origin revert)")

    heading(8, "The records are back as they were")
    data, _ = client.graphql(ORDER_QUERY, {"pk": order_id})
    if data["order"] is not None:
        raise StepFailed(f"order {order_id} still exists after the revert")
    ok(f"order {order_id} and its lines are gone")
    after_revert = show_products(client)
    if after_revert != before:
        raise StepFailed(f"stock after the revert is {after_revert}, expected {before}")
    ok("the products have their stock from before the order")

    say()
    say(f"Demo finished in {time.monotonic() - started:.0f} s: every step passed.")


def build_env(data_dir: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "PYTHONPATH"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="example.settings",
        EXAMPLE_DATA_DIR=str(data_dir),
        DJANGO_SUPERUSER_USERNAME=USERNAME,
        DJANGO_SUPERUSER_PASSWORD=PASSWORD,
        PYTHONUNBUFFERED="1",
    )
    return env


@contextmanager
def data_folder(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="koherent-demo-"))
    try:
        yield path
    finally:
        if keep:
            say(f"Kept the demo's files (database, queue, logs) in {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--keep", action="store_true", help="keep the database, queue and logs afterwards"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=TIMEOUT,
        help=f"seconds to wait for the server, the worker and the tasks (default {TIMEOUT:.0f})",
    )
    args = parser.parse_args()
    with data_folder(args.keep) as data_dir:
        env = build_env(data_dir)
        processes = Processes(env, data_dir)
        try:
            run_story(processes, env, args.timeout)
        except (StepFailed, OSError) as exc:
            say()
            say(f"DEMO FAILED: {exc}")
            tails = processes.tails()
            if tails:
                say(tails)
            return 1
        except KeyboardInterrupt:
            say("\ninterrupted")
            return 130
        finally:
            processes.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
