"""Build one throwaway project from the docs' module blocks and let Django check it.

``python -m tests.docs.project DIR`` reads ``{"path/to/module.py": source}`` as JSON on stdin,
writes the modules under ``DIR``, sets Django up with every package that has a
``models.py`` installed (and ``myproject.urls`` as the URLconf when there is one), imports
every module and runs the system checks. Any error exits non-zero with its traceback.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path


def main() -> None:
    root = Path(sys.argv[1])
    modules: dict[str, str] = json.load(sys.stdin)
    for path, source in modules.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        for parent in target.relative_to(root).parents:
            if parent != Path("."):
                (root / parent / "__init__.py").touch()
        target.write_text(source + "\n")
    sys.path.insert(0, str(root))
    apps = sorted({p.split("/")[0] for p in modules if p.endswith("/models.py")})

    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="docs",
        DEBUG=True,
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.sessions",
            "django.contrib.messages",
            "django.contrib.admin",
            "simple_history",
            "strawberry_django",
            "koherent",
            "koherent.admin",
            *apps,
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
            "koherent.middleware.KoherentMiddleware",
        ],
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                    ]
                },
            }
        ],
        ROOT_URLCONF="myproject.urls" if "myproject/urls.py" in modules else None,
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    )
    django.setup()
    for path in modules:
        importlib.import_module(path.removesuffix(".py").replace("/", "."))
    from django.core.management import call_command

    call_command("check", fail_level="WARNING")
    print("project ok:", ", ".join(modules))


if __name__ == "__main__":
    main()
