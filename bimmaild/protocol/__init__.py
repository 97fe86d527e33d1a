"""The control protocol: the one package that daemon and client share.

It depends only on the standard library, msgpack and (lazily, for the default
socket path) platformdirs; it imports nothing else of bimmail, and a test
enforces that.
"""
