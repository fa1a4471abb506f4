"""The URLs of host mode's file routes (``fletchat.webfiles``), for the UI in a tab and in the
static client. Pure: no starlette, no flet (the static client imports it under Pyodide)."""

from __future__ import annotations

import re
from urllib.parse import urlencode

UPLOAD_PATH = "/files/upload"  # PUT UPLOAD_PATH/<ticket>: a browser's upload
BLOB_PATH = "/files/blob"  # GET BLOB_PATH/<sha256>?name=N[&dl=1]: a stored file
OPENED_PATH = "/files/opened"  # GET OPENED_PATH/<token>?name=N[&dl=1]: a sealed file, opened
OPENED_TOKEN = re.compile(r"[A-Za-z0-9_-]{32,64}")  # such a token (fullmatch)


def blob_url(sha256: str, name: str = "", download: bool = False) -> str:
    """Where a browser fetches a stored file from its host (relative to the host's origin)."""
    return f"{BLOB_PATH}/{sha256}" + _query(name, download)


def opened_url(token: str, name: str = "", download: bool = False) -> str:
    """Where a tab fetches a private room's file its session opened (``webopened``)."""
    return f"{OPENED_PATH}/{token}" + _query(name, download)


def _query(name: str, download: bool) -> str:
    query = {"name": name} if name else {}
    if download:
        query["dl"] = "1"
    return f"?{urlencode(query)}" if query else ""


def upload_url(token: str) -> str:
    return f"{UPLOAD_PATH}/{token}"
