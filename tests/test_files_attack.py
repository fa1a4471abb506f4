"""Red-team findings against file sharing (each test failed on the code before its fix): files
other people send must not use up a peer's quota without a click. Real sockets and blob stores."""

from __future__ import annotations

import os

from fletchat.files import limits as L
from fletchat.files.share import auto_wanted
from fletchat.files.views import FileState
from fletchat.model import FileRef
from tests.fileshost import files_peer
from tests.test_files_sharing import MB, connected
from tests.timing import eventually, never_within


def test_images_and_voice_notes_download_by_themselves_only_up_to_a_size() -> None:
    """"Images always" let one 4 GiB "photo.png" (any bytes, labelled image/png) fill every
    peer's quota, with no click."""
    sha, root = "a" * 64, "b" * 64
    huge = FileRef(sha, L.MAX_FILE_BYTES, L.MAX_CHUNK_SIZE, root, "photo.png", "image/png")
    long_voice = FileRef(sha, L.MAX_FILE_BYTES, L.MAX_CHUNK_SIZE, root, "v.ogg", "audio/ogg",
                         ms=1000)
    small = FileRef(sha, 2 * MB, L.DEFAULT_CHUNK_SIZE, root, "photo.png", "image/png")
    assert not auto_wanted(huge, 0) and not auto_wanted(long_voice, L.DEFAULT_AUTO_DOWNLOAD_BYTES)
    assert auto_wanted(small, 0)  # a photo still shows without a click, even with auto off
    assert auto_wanted(huge, L.MAX_FILE_BYTES)  # --download-all


async def test_auto_downloads_leave_a_quarter_of_the_quota_for_the_persons_own_use(tmp_path):
    ann = await files_peer(tmp_path, "Ann")
    bob = await files_peer(tmp_path, "Bob", quota=4 * MB)
    try:
        await connected((bob, ann))
        photo = tmp_path / "photo.png"
        photo.write_bytes(os.urandom(3_500_000))  # labelled an image by its name
        ref = (await ann.backend.share_files([photo], "", "general")).files[0]
        assert ref.is_image
        await eventually(lambda: bob.messages_with_files(), "Bob has the message", 20)
        await never_within(lambda: bob.backend.file_view(ref).state is not FileState.AVAILABLE_REMOTE,
                           "an auto-download into the quota's last quarter", 2.0)
        await bob.backend.fetch_file(ref)  # Bob's click: his own choice, the whole quota
        await eventually(lambda: bob.backend.file_view(ref).state is FileState.READY,
                         "downloaded on a click", 30)
    finally:
        await ann.close()
        await bob.close()
