"""Makes the server fixtures available to the tests of the test servers themselves."""

from tests.servers.fixtures import smtp_server

__all__ = ["smtp_server"]
