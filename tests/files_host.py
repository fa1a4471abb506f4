"""Host mode with a one-host stand-in for ``hub.files`` (for the files UI's browser tests while
the LAN side is wired elsewhere): files shared in a tab are imported into the real blob store
(``files.blobstore``, thumbnails by ``files.thumbs``) and posted as messages with ``files``; every
tab of the host reads them from there, as it will with the real service. Fetching from peers is
not part of it (one host, no LAN).

    python -m tests.files_host --port N --data-dir DIR [--passphrase P]
"""

from __future__ import annotations

import asyncio
import dataclasses
import mimetypes
import sys
from pathlib import Path

from fletchat.files.blobstore import BlobStore
from fletchat.files.thumbs import ImageRefused, amake_thumbnail
from fletchat.files.views import FileChanged, FileState, FileView
from fletchat.model import FileRef, Message, ValidationError


class LocalFiles:
    """What ``HubBackend`` asks of ``hub.files``, for one host."""

    def __init__(self, hub, data_dir: Path) -> None:
        self.hub = hub
        self.store = BlobStore(data_dir / "files")
        self.limit = 25_000_000

    async def share(self, session, paths: list[Path], caption: str, channel: str) -> Message:
        refs = []
        for path in paths:
            mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            ref = await self.store.aimport_file(path, path.name, mime)
            if mime.startswith("image/"):
                try:
                    thumb = await amake_thumbnail(path)
                except ImageRefused:
                    thumb = None
                if thumb is not None:
                    tmp = path.with_name(path.name + ".thumb")
                    tmp.write_bytes(thumb.data)
                    tref = await self.store.aimport_file(tmp, "thumbnail", thumb.mime)
                    ref = dataclasses.replace(ref, thumb=tref)
            refs.append(ref)
        if session.name is None:
            raise ValidationError("Join the chat first.")
        msg = Message.chat(session.name, caption, self.hub.peer_id, channel, files=tuple(refs))
        posted = await asyncio.to_thread(self.hub.post, msg)
        return posted or msg

    def view(self, ref: FileRef, room_keys) -> FileView:
        path = self.store.path(ref.sha256)
        thumb = self.store.path(ref.thumb.sha256) if ref.thumb else None
        if path is None:
            return FileView(FileState.AVAILABLE_REMOTE, 0, ref.size, name=ref.name, mime=ref.mime)
        return FileView(FileState.READY, ref.size, ref.size, path, thumb, name=ref.name,
                        mime=ref.mime)

    async def fetch_ref(self, ref: FileRef, room_keys) -> None:
        self.hub._publish(FileChanged(ref.sha256, self.view(ref, room_keys)))

    def usage(self) -> tuple[int, int]:
        u = self.store.usage()
        return u.used, u.quota

    def set_auto_download_limit(self, n: int) -> None:
        self.limit = n


def main(argv: list[str]) -> int:
    import logging

    from fletchat.config import load_config
    from fletchat.host import run_host
    from fletchat.node import Node

    config = load_config(["--web", "--no-lan", *argv])
    logging.basicConfig(level=logging.INFO)
    logging.getLogger("fletchat.ui").setLevel(logging.DEBUG)
    logging.getLogger("flet").setLevel(logging.DEBUG)

    def make_node() -> Node:
        node = Node(config, "web-host")
        node.hub.files = LocalFiles(node.hub, config.data_dir)
        return node

    run_host(config, make_node, "Host mode with the one-host files stand-in.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
