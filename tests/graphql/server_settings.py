"""Settings of the real server the GraphQL tests start: the test settings, GraphQL URLs."""

from tests.settings import *  # noqa: F403

ROOT_URLCONF = "tests.graphql.urls"
