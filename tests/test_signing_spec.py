"""The canonical bytes another implementation must produce, as fixed vectors (docs/protocol.md)."""

from __future__ import annotations

import json

from fletchat.model import Message
from fletchat.protocol import (
    auth_transcript,
    decode_frame,
    encode_msg,
    message_signing_bytes,
    ts_millis,
)

VECTOR = Message(
    id="b38a0c1e", kind="chat", author="Zoë", origin="peer-a", text='say "hi"\n\tto ünï 🎉 \\o/',
    ts=1795578257.791, channel="general", hlc="01994d7c2a1f.0000.peer-a", seq=12,
)
EXPECTED = (
    '["fletchat-msg-v2","b38a0c1e","chat","Zoë","peer-a","say \\"hi\\"\\n\\tto ünï 🎉 \\\\o/",'
    '1795578257791,"general","01994d7c2a1f.0000.peer-a",12]'
)


def test_the_signed_bytes_of_a_message_are_this_exact_string() -> None:
    assert message_signing_bytes(VECTOR) == EXPECTED.encode("utf-8")
    # what a JS peer computes: JSON.stringify of the same array, ts as Math.round(ts * 1000)
    fields = json.loads(EXPECTED)
    assert fields[6] == round(VECTOR.ts * 1000)


def test_ts_is_signed_as_integer_milliseconds_whatever_the_json_number_looks_like() -> None:
    for wire, ms in [("1795578257.791", 1795578257791), ("1795578257", 1795578257000),
                     ("1795578257.0", 1795578257000), ("1795578257.7915", 1795578257792),
                     ("0.0005", 1)]:
        frame = encode_msg(VECTOR).replace('"ts":1795578257.791', f'"ts":{wire}')
        msg = decode_frame(frame).message
        assert ts_millis(msg.ts) == ms, wire
        assert message_signing_bytes(msg) == EXPECTED.replace("1795578257791", str(ms)).encode()


def test_the_signed_bytes_are_json_dumps_of_the_fields_for_every_kind_of_text() -> None:
    """The joined-up encoding must give what ``json.dumps`` of the field array gives, escapes
    and all (controls, quotes, line separators, surrogate pairs, joiners)."""
    from dataclasses import replace

    for text in ['a"b\\c\n\t\u2028\u2029 é 😀 \x7f </script>', "x\u200dy", "ok"]:
        for author in ["Zoë", "a\u200db", "\u05d0\u05d1"]:
            msg = replace(VECTOR, text=text, author=author, channel="c-" + author)
            fields = ["fletchat-msg-v2", msg.id, msg.kind, msg.author, msg.origin, msg.text,
                      ts_millis(msg.ts), msg.channel, msg.hlc, msg.seq]
            want = json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()
            assert message_signing_bytes(msg) == want, (text, author)


def test_the_auth_transcript_is_this_exact_string() -> None:
    got = auth_transcript(
        role="client", signer_id="b", signer_key="S" * 43 + "=", other_id="a",
        server_cert_sha256="9f" * 32, client_nonce="5d" * 16, server_nonce="77" * 16,
    )
    assert got == (
        '["fletchat-auth-v1","client","b","' + "S" * 43 + '=","a","' + "9f" * 32 + '","'
        + "5d" * 16 + '","' + "77" * 16 + '"]'
    ).encode()
