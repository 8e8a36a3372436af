"""The family tests run tiny models: one thread is faster than two contending ones."""

from tests.helpers import one_thread  # noqa: F401  (an autouse fixture)
