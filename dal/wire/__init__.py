"""The MySQL wire codec, sans-IO: bytes in, messages or bytes out, no sockets.

The front end (server role) and `pool` (client role) share it, and tests drive it with no network.
"""
