"""Options, their FLETCHAT_* environment twins, and where an install keeps its files."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from fletchat.config import (
    DEFAULT_HOST,
    DEFAULT_PEER_PORT,
    DEFAULT_WEB_PORT,
    default_data_dir,
    load_config,
    parse_peer,
)

linux_only = pytest.mark.skipif(platform.system() != "Linux", reason="XDG paths are the Linux rule")


def test_defaults() -> None:
    c = load_config([], {})
    assert (DEFAULT_WEB_PORT, DEFAULT_HOST, DEFAULT_PEER_PORT) == (8550, "0.0.0.0", 8551)
    assert c.port == 8550 and c.host == "0.0.0.0" and c.peer_port == 8551
    assert c.web is False and c.headless is False and c.lan is True
    assert c.name == "" and c.peers == () and c.interfaces == ()
    assert c.log_level == "INFO"
    assert c.data_dir == default_data_dir({})


def test_empty_env_values_are_ignored() -> None:
    c = load_config([], {"FLETCHAT_PORT": "", "FLETCHAT_HOST": "", "FLETCHAT_NAME": ""})
    assert c.port == 8550 and c.host == "0.0.0.0" and c.name == ""


# (option argv, env dict, attribute, expected value)
CASES = [
    (["--web"], {"FLETCHAT_WEB": "1"}, "web", True),
    (["--headless"], {"FLETCHAT_HEADLESS": "1"}, "headless", True),
    (["--host", "127.0.0.1"], {"FLETCHAT_HOST": "127.0.0.1"}, "host", "127.0.0.1"),
    (["--port", "9000"], {"FLETCHAT_PORT": "9000"}, "port", 9000),
    (["--peer-port", "0"], {"FLETCHAT_PEER_PORT": "0"}, "peer_port", 0),
    (
        ["--data-dir", "/tmp/fc-x"],
        {"FLETCHAT_DATA_DIR": "/tmp/fc-x"},
        "data_dir",
        Path("/tmp/fc-x"),
    ),
    (["--name", " Ada "], {"FLETCHAT_NAME": " Ada "}, "name", "Ada"),
    (
        ["--peer", "10.0.0.2:8551"],
        {"FLETCHAT_PEERS": "10.0.0.2:8551"},
        "peers",
        (("10.0.0.2", 8551),),
    ),
    (["--interface", "eth0"], {"FLETCHAT_INTERFACE": "eth0"}, "interfaces", ("eth0",)),
    (["--no-lan"], {"FLETCHAT_NO_LAN": "1"}, "lan", False),
    (["--log-level", "debug"], {"FLETCHAT_LOG_LEVEL": "debug"}, "log_level", "DEBUG"),
]


@pytest.mark.parametrize(("argv", "env", "attr", "expected"), CASES, ids=[c[2] for c in CASES])
def test_option_and_env_twin(argv: list[str], env: dict, attr: str, expected: object) -> None:
    assert getattr(load_config(argv, {}), attr) == expected
    assert getattr(load_config([], env), attr) == expected


@pytest.mark.parametrize(
    ("argv", "env", "attr", "expected"),
    [
        (["--host", "127.0.0.1"], {"FLETCHAT_HOST": "10.1.1.1"}, "host", "127.0.0.1"),
        (["--port", "9001"], {"FLETCHAT_PORT": "9002"}, "port", 9001),
        (["--port", "0"], {"FLETCHAT_PORT": "9002"}, "port", 0),
        (["--peer-port", "7000"], {"FLETCHAT_PEER_PORT": "7001"}, "peer_port", 7000),
        (["--data-dir", "/tmp/a"], {"FLETCHAT_DATA_DIR": "/tmp/b"}, "data_dir", Path("/tmp/a")),
        (["--name", "Opt"], {"FLETCHAT_NAME": "Env"}, "name", "Opt"),
        (["--peer", "a:1"], {"FLETCHAT_PEERS": "b:2,c:3"}, "peers", (("a", 1),)),
        (["--interface", "eth1"], {"FLETCHAT_INTERFACE": "eth2"}, "interfaces", ("eth1",)),
        (["--log-level", "warning"], {"FLETCHAT_LOG_LEVEL": "debug"}, "log_level", "WARNING"),
    ],
)
def test_option_beats_env(argv: list[str], env: dict, attr: str, expected: object) -> None:
    assert getattr(load_config(argv, env), attr) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.168.1.5:8551", ("192.168.1.5", 8551)),
        ("peer.local:1", ("peer.local", 1)),
        ("[fe80::1]:8551", ("fe80::1", 8551)),
        ("[::1]:65535", ("::1", 65535)),
        ("  host:80  ", ("host", 80)),
    ],
)
def test_parse_peer(text: str, expected: tuple[str, int]) -> None:
    assert parse_peer(text) == expected


def test_repeated_peer_option() -> None:
    c = load_config(["--peer", "a:1", "--peer", "[::1]:2"], {})
    assert c.peers == (("a", 1), ("::1", 2))


@pytest.mark.parametrize(
    "bad",
    [
        "nohost",
        "host:",
        ":8551",
        "host:0",
        "host:65536",
        "host:abc",
        "[::1]",
        "[::1]8551",
        "[::1:80",
    ],
)
def test_bad_peer_option_exits_2(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        load_config(["--peer", bad], {})
    assert exc.value.code == 2
    assert "HOST:PORT" in capsys.readouterr().err


def test_peers_env_comma_list() -> None:
    c = load_config([], {"FLETCHAT_PEERS": "10.0.0.2:8551, [fd00::2]:9000 ,,host.lan:1"})
    assert c.peers == (("10.0.0.2", 8551), ("fd00::2", 9000), ("host.lan", 1))


def test_bad_peers_env_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        load_config([], {"FLETCHAT_PEERS": "10.0.0.2:8551,oops"})
    assert exc.value.code == 2
    assert "FLETCHAT_PEERS" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["abc", "-1", "70000", "80.5"])
def test_bad_port_env_exits_2(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        load_config([], {"FLETCHAT_PORT": value})
    assert exc.value.code == 2
    assert "FLETCHAT_PORT" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["abc", "70000", "-5"])
def test_bad_port_option_exits_2(value: str) -> None:
    with pytest.raises(SystemExit) as exc:
        load_config(["--port", value], {})
    assert exc.value.code == 2


def test_unicode_digit_port_env_exits_2() -> None:
    with pytest.raises(SystemExit):
        load_config([], {"FLETCHAT_PORT": "²"})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        ("yes", True),
        ("on", True),
        ("0", False),
        ("false", False),
        ("no", False),
        ("", False),
    ],
)
def test_web_env_truthiness(value: str, expected: bool) -> None:
    assert load_config([], {"FLETCHAT_WEB": value}).web is expected


def test_data_dir_expands_user(tmp_path: Path) -> None:
    c = load_config(["--data-dir", "~/fc-data"], {})
    assert c.data_dir == Path("~/fc-data").expanduser()
    assert "~" not in str(c.data_dir)


def test_default_data_dir_flet_storage_wins(tmp_path: Path) -> None:
    env = {"FLET_APP_STORAGE_DATA": str(tmp_path / "flet"), "XDG_DATA_HOME": str(tmp_path / "xdg")}
    assert default_data_dir(env) == tmp_path / "flet"
    # And load_config uses it when nothing else is given.
    assert load_config([], env).data_dir == tmp_path / "flet"


@linux_only
def test_default_data_dir_xdg(tmp_path: Path) -> None:
    assert default_data_dir({"XDG_DATA_HOME": str(tmp_path)}) == tmp_path / "fletchat"
    assert load_config([], {"XDG_DATA_HOME": str(tmp_path)}).data_dir == tmp_path / "fletchat"


@linux_only
def test_default_data_dir_home_fallback(tmp_path: Path) -> None:
    assert default_data_dir({"HOME": str(tmp_path)}) == tmp_path / ".local" / "share" / "fletchat"


def test_data_dir_env_beats_default(tmp_path: Path) -> None:
    env = {
        "FLETCHAT_DATA_DIR": str(tmp_path / "mine"),
        "FLET_APP_STORAGE_DATA": str(tmp_path / "f"),
    }
    assert load_config([], env).data_dir == tmp_path / "mine"
