"""Flet Chat: a chat for the local network, with no server, no account and no internet."""

__version__ = "0.1.0"
