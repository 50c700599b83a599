"""Settings of the GraphQL soak's server: the GraphQL tests' server, with each request's app
read from its ``X-Koherent-App`` header, and the soak's schema at ``/graphql/soak/``."""

from tests.graphql.server_settings import *  # noqa: F403
from tests.graphql.server_settings import KOHERENT as _BASE

KOHERENT = {**_BASE, "APP_RESOLVER": "koherent.resolvers.header_app"}
ROOT_URLCONF = "tests.soak.graphql_urls"
