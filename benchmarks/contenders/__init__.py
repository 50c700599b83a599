"""One Django app per contender, each with the same models (fields, sizes) and its own history.

========================  ======================  ============================================
app label                 library                 models
========================  ======================  ============================================
``bench_plain``           none (plain Django)     ``Row``
``bench_simplehistory``   django-simple-history   ``Row``, ``Parent``, ``Child``
``bench_koherent``        Koherent                ``Row``, ``Tracked0-9``, ``Parent``, ``Child``
``bench_auditlog``        django-auditlog         ``Row``, ``Tracked0-9``
``bench_reversion``       django-reversion        ``Row``, ``Tracked0-9``, ``Parent``, ``Child``
``bench_pghistory``       django-pghistory        ``Row``, ``Tracked0-9``
========================  ======================  ============================================

The apps have no migrations: the runner creates their tables with ``migrate --run-syncdb`` and
then installs pghistory's triggers.
"""
