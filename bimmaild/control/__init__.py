"""The control socket: server, connections, router and the handlers per area."""
