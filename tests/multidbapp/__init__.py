"""A tracked app the multi-database tests route, with its history, to the ``other`` database."""
