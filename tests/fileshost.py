"""In-process peers with file sharing for tests: a hub with a SQLite history, an Ed25519
identity (the mesh over TLS, as installs use it), the mesh on 127.0.0.1 and the files lane;
no discovery (tests connect peers with ``connect``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fletchat.files.blobstore import BlobStore
from fletchat.files.lane import FilesLane
from fletchat.files.limits import DEFAULT_AUTO_DOWNLOAD_BYTES, DEFAULT_QUOTA_BYTES
from fletchat.files.share import FileShare
from fletchat.hub import Hub, HubSession
from fletchat.mesh import Mesh, MeshSettings
from fletchat.model import Message, Peer, new_id
from fletchat.node import mesh_for_hub
from fletchat.store import Store
from fletchat.trust import Trust
from fletchat.ui.hub_backend import HubBackend


@dataclass
class FilesPeer:
    name: str
    hub: Hub
    mesh: Mesh
    share: FileShare
    lane: FilesLane
    trust: Trust
    session: HubSession
    events: list = field(default_factory=list)

    @property
    def backend(self) -> HubBackend:
        return HubBackend(self.session)

    def connect(self, other: FilesPeer) -> None:
        self.mesh.add_peer_address("127.0.0.1", other.mesh.port)

    def messages_with_files(self) -> list[Message]:
        return [e for e in self.events if isinstance(e, Message) and e.files]

    async def close(self) -> None:
        await self.lane.stop()
        await self.share.stop()
        await self.mesh.stop()
        self.hub.close()
        self.trust.close()


async def files_peer(root: Path, name: str, *, quota: int = DEFAULT_QUOTA_BYTES,
                     auto: int = DEFAULT_AUTO_DOWNLOAD_BYTES) -> FilesPeer:
    data = root / name
    data.mkdir(parents=True, exist_ok=True)
    peer_id = f"{name.lower()}-{new_id()[:12]}"
    trust = Trust.open(data, peer_id)
    hub = Hub(peer_id, "headless", store=Store.open(data / "history.db"), trust=trust)
    share = FileShare(BlobStore(data / "files", quota), hub._publish, auto_limit=auto)
    share.attach_listener(hub)
    hub.files = share
    mesh = mesh_for_hub(hub, Peer(peer_id, name, "headless"), trust, MeshSettings(host="127.0.0.1"))
    await share.start()
    await mesh.start()
    lane = FilesLane(mesh, share.service)
    lane.start()
    session = HubSession(hub, device="headless")
    peer = FilesPeer(name, hub, mesh, share, lane, trust, session)
    hub.add_listener(peer.events.append)
    session.join(name)
    return peer
