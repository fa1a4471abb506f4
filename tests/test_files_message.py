"""Files in the signed message (issue 13): the ``files`` field on the wire, in the signing bytes,
in the history store (migrated forward without loss), in search; sealed files show no name."""

from __future__ import annotations

import json
import sqlite3

import pytest

from fletchat.clock import Stamp
from fletchat.model import FileRef, Message, ValidationError
from fletchat.protocol import decode_frame, encode_msg, message_signing_bytes
from fletchat.store import MIGRATIONS, SCHEMA_VERSION, Store, _statements

SHA = "ab" * 32
ROOT = "cd" * 32
PDF = FileRef(SHA, 734003, 262144, ROOT, "Quarterly Plan.pdf", "application/pdf")


def with_files(*files: FileRef, text: str = "") -> Message:
    msg = Message.chat("Ada", text, "peer-a", files=files)
    return Message(msg.id, msg.kind, msg.author, msg.origin, msg.text, msg.ts, msg.channel,
                   "0000000003e8.0000.peer-a", 1, msg.files)


def test_a_message_with_files_round_trips_through_a_frame() -> None:
    msg = with_files(PDF)
    assert msg.text == ""  # a file needs no caption
    frame = decode_frame(encode_msg(msg, ""))
    assert frame.message == msg and frame.message.files[0].name == "Quarterly Plan.pdf"
    assert "files" not in Message.chat("Ada", "hi", "peer-a").to_dict()  # absent = none


@pytest.mark.parametrize("files, why", [
    ([], "files must be a list"),
    ([dict(PDF.to_wire(), name="../x\u202egpj.exe")], "control or formatting"),
    ([dict(PDF.to_wire(), size=-1)], "file.size"),
])
def test_bad_files_make_the_message_invalid(files, why) -> None:
    data = dict(with_files(PDF).to_dict(), files=files)
    with pytest.raises(ValidationError, match=why):
        Message.from_dict(data)


def test_empty_text_is_only_allowed_with_files() -> None:
    data = with_files(PDF).to_dict()
    del data["files"]
    with pytest.raises(ValidationError):
        Message.from_dict(data)
    with pytest.raises(ValidationError):
        Message.from_dict(dict(data, kind="join", files=[PDF.to_wire()]))


def test_files_are_signed_and_messages_without_keep_their_bytes() -> None:
    plain = Message.chat("Ada", "hi", "peer-a")
    assert len(json.loads(message_signing_bytes(plain))) == 10
    msg = with_files(PDF, text="plan")
    signed = json.loads(message_signing_bytes(msg))
    assert len(signed) == 11 and signed[10] == [dict(sorted(PDF.to_wire().items()))]
    renamed = Message.from_dict(dict(msg.to_dict(), files=[dict(PDF.to_wire(), name="other.pdf")]))
    assert message_signing_bytes(renamed) != message_signing_bytes(msg)


def test_the_store_keeps_files_and_search_finds_them_by_name(tmp_path) -> None:
    for fts in (True, False):
        with Store.open(tmp_path / f"h{fts}.db", fts=fts) as store:
            msg = with_files(PDF, text="see attached")
            store.add(msg, Stamp.decode(msg.hlc), 1)
            other = Message.chat("Bob", "quarterly numbers", "peer-b")
            store.add(other, Stamp(2000, 0, "peer-b"), 1)
            assert store.get(msg.id).msg.files == msg.files == (PDF,)
            hits = store.search("plan")
            assert [h.record.msg.id for h in hits] == [msg.id]
            assert "\x02Plan\x03" in hits[0].snippet
            assert {h.record.msg.id for h in store.search("quarterly")} == {msg.id, other.id}
            assert store.search("pdf plan")[0].record.msg.id == msg.id


def test_sealed_files_are_not_searchable_and_show_no_name() -> None:
    sealed = FileRef(SHA, 65536, 65536, ROOT, sealed="sealed:v1:AAAA")
    wire = with_files(sealed).to_dict()["files"][0]
    assert "name" not in wire and "mime" not in wire and wire["sealed"] == "sealed:v1:AAAA"


def test_a_v2_history_migrates_forward_and_gains_files(tmp_path) -> None:
    path = tmp_path / "history.db"
    con = sqlite3.connect(path, isolation_level=None)
    for script in MIGRATIONS[:2]:
        for stmt in _statements(script):
            con.execute(stmt)
    con.execute("PRAGMA user_version = 2")
    con.execute("INSERT INTO messages (id, channel, origin, seq, hlc, kind, author, text, ts, "
                "received_at, state, verified) VALUES ('old', 'general', 'bob', 1, "
                "'0000000003e8.0000.bob', 'chat', 'Bob', 'old plan', 1.7e9, 1.7e9, 'delivered', 1)")
    con.close()
    with Store.open(path) as store:
        assert store._con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
        assert store.get("old").msg.text == "old plan" and store.get("old").verified
        msg = with_files(PDF)
        store.add(msg, Stamp.decode(msg.hlc), 2)
        assert {h.record.msg.id for h in store.search("plan")} == {"old", msg.id}


def test_the_signed_bytes_of_a_message_with_a_file_are_this_exact_string() -> None:
    """The vector in docs/protocol.md ("Files in a message"): the file "test" (4 bytes)."""
    f = FileRef("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", 4, 262144,
                "dbebd10e61bc8c28591273feafbbef95d544f874693301d8f7f8e54c6e30058e", "plan.txt",
                "text/plain")
    msg = Message("b38a0c1e", "chat", "Zoë", "peer-a", "", 1795578257.791, "general",
                  "01994d7c2a1f.0000.peer-a", 12, (f,))
    assert message_signing_bytes(msg).decode("utf-8") == (
        '["fletchat-msg-v2","b38a0c1e","chat","Zoë","peer-a","",1795578257791,"general",'
        '"01994d7c2a1f.0000.peer-a",12,[{"chunk":262144,"mime":"text/plain","name":"plan.txt",'
        '"root":"dbebd10e61bc8c28591273feafbbef95d544f874693301d8f7f8e54c6e30058e",'
        '"sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","size":4}]]')
