"""Protocol 2 for peers, the relay's own version 1 for static web clients, in one server stream."""

from __future__ import annotations

import json

import pytest

from fletchat.model import Message
from fletchat.protocol import (
    PEER_PROTOCOL_VERSION,
    PROTOCOL_VERSION,
    MsgFrame,
    ProtocolError,
    decode_frame,
    encode_msg,
    encode_pong,
    encode_sync,
)
from fletchat.relay_protocol import (
    RelayWelcome,
    decode_client_frame,
    decode_server_frame,
    encode_client_hello,
    encode_welcome,
)


def test_a_static_client_reads_peer_frames_and_relay_frames_from_the_host() -> None:
    msg = Message.chat("Ann", "hi", "host")
    assert isinstance(decode_server_frame(encode_msg(msg)), MsgFrame)
    assert decode_server_frame(encode_sync([msg])[0]).messages == (msg,)
    decode_server_frame(encode_pong())
    assert decode_server_frame(encode_welcome("Ann")) == RelayWelcome("Ann")
    assert json.loads(encode_welcome("Ann"))["v"] == PROTOCOL_VERSION == 1
    assert json.loads(encode_msg(msg))["v"] == PEER_PROTOCOL_VERSION == 2
    decode_client_frame(encode_client_hello("Ann"))


def test_a_version_1_peer_frame_is_refused_with_a_clear_reason() -> None:
    with pytest.raises(ProtocolError, match=r"unsupported protocol version 1 \(this peer speaks 2\)"):
        decode_frame('{"v":1,"type":"ping"}')
