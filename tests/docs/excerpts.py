"""Check excerpt blocks against the real code: ``python -m tests.docs.excerpts`` reads a JSON
list of ``{"id", "source", "given", "optional"}`` on stdin and prints ``{id: [problem, ...]}``.

Django is set up once with a minimal project (Koherent, simple-history, the admin), as a
user's process would have it; each block is then checked in a forked child, so the modules
one block imports are not there for the next. In the child the block's imports run for real;
every attribute chain read from an imported name is resolved on the real objects; every
other name the block reads must be bound in the block, a builtin or ``given``. A module in
``optional`` (``django.tasks`` before Django 6.0) may be missing: the names imported from it are
then taken as given.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import json
import os
import sys
from typing import Any

BUILTINS = set(dir(builtins)) | {"__name__", "__file__"}


def setup_django() -> None:
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="docs",
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.sessions",
            "django.contrib.messages",
            "django.contrib.admin",
            "simple_history",
            "koherent",
            "koherent.admin",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    )
    django.setup()


def _bound(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                names.add(alias.asname or alias.name.split(".")[0])
    return names


def _missing_optional(error: Exception, module: str, optional: set[str]) -> bool:
    return isinstance(error, ModuleNotFoundError) and any(
        module == o or module.startswith(f"{o}.") for o in optional
    )


def _run_imports(
    tree: ast.AST, problems: list[str], optional: set[str], given: set[str]
) -> dict[str, Any]:
    """Run the block's imports; the names they bind, to the real objects."""
    bound: dict[str, Any] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                try:
                    module = importlib.import_module(alias.name)
                except Exception as error:
                    if _missing_optional(error, alias.name, optional):
                        given.add(alias.asname or alias.name.split(".")[0])
                        continue
                    problems.append(f"line {node.lineno}: import {alias.name}: {error!r}")
                    continue
                if alias.asname:
                    bound[alias.asname] = module
                else:
                    top = alias.name.split(".")[0]
                    bound[top] = sys.modules[top]
        elif isinstance(node, ast.ImportFrom):
            if node.level or node.module is None:
                problems.append(f"line {node.lineno}: a relative import")
                continue
            try:
                module = importlib.import_module(node.module)
            except Exception as error:
                if _missing_optional(error, node.module, optional):
                    given.update(alias.asname or alias.name for alias in node.names)
                    continue
                problems.append(f"line {node.lineno}: from {node.module}: {error!r}")
                continue
            for alias in node.names:
                if alias.name == "*":
                    continue
                try:
                    value = getattr(module, alias.name)
                except AttributeError:
                    try:
                        value = importlib.import_module(f"{node.module}.{alias.name}")
                    except Exception:
                        problems.append(
                            f"line {node.lineno}: cannot import {alias.name!r} from {node.module}"
                        )
                        continue
                bound[alias.asname or alias.name] = value
    return bound


def _chain(node: ast.Attribute) -> tuple[str, list[str]] | None:
    attrs: list[str] = []
    current: ast.expr = node
    while isinstance(current, ast.Attribute):
        attrs.append(current.attr)
        current = current.value
    if not isinstance(current, ast.Name):
        return None
    return current.id, attrs[::-1]


def check(source: str, given: set[str], optional: set[str] | None = None) -> list[str]:
    problems: list[str] = []
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        return [f"does not parse: {error}"]
    given = set(given)
    imported = _run_imports(tree, problems, set(optional or ()), given)
    from django.conf import settings

    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        found = _chain(node)
        if found is None or found[0] not in imported:
            continue
        root, attrs = found
        if isinstance(node.ctx, ast.Store):
            attrs = attrs[:-1]
        value = imported[root]
        if value is settings:  # a project's own settings: not Koherent's to check
            continue
        walked = root
        for attr in attrs:
            try:
                value = getattr(value, attr)
            except AttributeError:
                problems.append(f"line {node.lineno}: {walked} has no attribute {attr!r}")
                break
            except Exception:  # a descriptor needing an instance, a database...
                break
            walked = f"{walked}.{attr}"
    defined = _bound(tree) | BUILTINS | given
    for node in ast.walk(tree):
        if not isinstance(node, ast.Name) or not isinstance(node.ctx, ast.Load):
            continue
        if node.id not in defined:
            problems.append(
                f"line {node.lineno}: {node.id!r} is neither imported, defined nor given"
            )
            defined.add(node.id)  # once per name
    return problems


def check_in_child(source: str, given: set[str], optional: set[str]) -> list[str]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read)
        try:
            result = check(source, given, optional)
        except BaseException as error:
            result = [f"the checker failed: {error!r}"]
        with os.fdopen(write, "w") as pipe:
            json.dump(result, pipe)
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    problems: list[str] = json.loads(data) if data else ["the checker died"]
    return problems


def main() -> None:
    setup_django()
    items = json.load(sys.stdin)
    results = {
        item["id"]: check_in_child(
            item["source"], set(item["given"]), set(item.get("optional", []))
        )
        for item in items
    }
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
