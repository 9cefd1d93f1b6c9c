"""The `vpc_resolver` fixture, registered through the `pytest11` entry point (no conftest needed).

    def test_it(vpc_resolver):
        srv = vpc_resolver(topology="topology.yaml")          # Server(...) arguments
        aws = vpc_resolver.from_aws(session)                   # Server.from_aws(...) arguments
"""

from __future__ import annotations

from typing import Any, List

import pytest

from ._server import Server


class ServerFactory:
    """Starts servers for one test; each is stopped when the test ends."""

    def __init__(self) -> None:
        self.servers: List[Server] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Server:
        srv = Server(*args, **kwargs)
        self.servers.append(srv)
        return srv

    def from_aws(self, *args: Any, **kwargs: Any) -> Server:
        srv = Server.from_aws(*args, **kwargs)  # type: ignore[attr-defined]
        self.servers.append(srv)
        return srv

    def close(self) -> None:
        for srv in reversed(self.servers):
            srv.close()
        self.servers.clear()


@pytest.fixture
def vpc_resolver():
    """A factory of started `vpc_resolver.Server`s: `vpc_resolver(topology=...)`, `vpc_resolver.from_aws(session)`."""
    factory = ServerFactory()
    try:
        yield factory
    finally:
        factory.close()
