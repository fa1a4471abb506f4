"""Command-line options and their environment-variable twins (a built app has no command line).

Pure: ``load_config(argv, environ)`` turns both into one ``Config``; nothing here opens sockets.
"""

from __future__ import annotations

import argparse
import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_HOST = "0.0.0.0"
DEFAULT_WEB_PORT = 8550
DEFAULT_PEER_PORT = 8551

DEFAULT_DOCTOR_AFTER = 30.0  # seconds alone before the network doctor looks for the cause

ENV_PREFIX = "FLETCHAT_"


@dataclass(frozen=True)
class Config:
    web: bool = False
    headless: bool = False
    doctor: bool = False
    doctor_after: float = DEFAULT_DOCTOR_AFTER  # 0: never run the doctor by itself
    host: str = DEFAULT_HOST
    port: int = DEFAULT_WEB_PORT
    peer_port: int = DEFAULT_PEER_PORT
    data_dir: Path = field(default_factory=lambda: default_data_dir({}))
    name: str = ""
    peers: tuple[tuple[str, int], ...] = ()
    interfaces: tuple[str, ...] = ()
    lan: bool = True
    log_level: str = "INFO"
    passphrase: str = ""
    static_dir: Path | None = None  # the static web build host mode serves; None = build/web-static
    download_all: bool = False  # fetch every attached file, whatever its size (headless bots)
    auto_download_bytes: int = 25 * 1000 * 1000  # = files.limits.DEFAULT_AUTO_DOWNLOAD_BYTES
    files_quota: int = 2 * 1024**3  # = files.limits.DEFAULT_QUOTA_BYTES: the data dir's files/


def default_data_dir(environ: Mapping[str, str]) -> Path:
    """Where an install keeps its files: Flet's app-data dir in a built app, else the OS convention."""
    flet_dir = environ.get("FLET_APP_STORAGE_DATA")
    if flet_dir:
        return Path(flet_dir)
    system = platform.system()
    home = Path(environ.get("HOME") or Path.home())
    if system == "Windows":
        base = Path(environ.get("APPDATA") or home / "AppData" / "Roaming")
        return base / "FletChat"
    if system == "Darwin":
        return home / "Library" / "Application Support" / "FletChat"
    base = Path(environ.get("XDG_DATA_HOME") or home / ".local" / "share")
    return base / "fletchat"


def parse_peer(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 as ``[addr]:port``) -> (host, port); a clear error otherwise."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        ok = bool(sep) and bool(port_text)
    else:
        host, sep, port_text = text.rpartition(":")
        ok = bool(sep) and bool(host)
    if not ok or not _is_ascii_number(port_text) or not 0 < int(port_text) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port_text)


def _is_ascii_number(text: str) -> bool:
    """``str.isdigit`` also accepts "²" and other digits ``int`` refuses."""
    return text.isascii() and text.isdigit()


def _port(text: str) -> int:
    if not _is_ascii_number(text) or not 0 <= int(text) < 65536:
        raise argparse.ArgumentTypeError(f"not a TCP port: {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 86400:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}")
    return value


def _truthy(text: str | None) -> bool:
    return (text or "").strip().lower() in ("1", "true", "yes", "on")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="main.py",
        description=(
            "Flet Chat: chat with everyone on your local network. With a display and Flet's "
            "desktop client it opens a window; otherwise (or with --web) it runs in host mode, "
            "a web server that phones and laptops on the LAN open in their browser. "
            "Every option has an environment-variable twin, shown in brackets."
        ),
    )
    p.add_argument("--web", action="store_true", help="force host mode (web server) [FLETCHAT_WEB=1]")
    p.add_argument(
        "--headless",
        action="store_true",
        help="a LAN peer with no UI: prints messages as JSON lines, sends each stdin line "
        "[FLETCHAT_HEADLESS=1]",
    )
    p.add_argument(
        "--doctor",
        action="store_true",
        help="check the network and say why nobody is found (interfaces, multicast, firewalls, "
        "VPN, AP isolation, subnets), then exit; --peer adds peers to check",
    )
    p.add_argument(
        "--doctor-after",
        type=_seconds,
        metavar="SECONDS",
        help=f"when no other device is found after this long, run the network doctor and show "
        f"its verdict (default {DEFAULT_DOCTOR_AFTER:g}; 0 = never) [FLETCHAT_DOCTOR_AFTER]",
    )
    p.add_argument("--host", help=f"address host mode listens on (default {DEFAULT_HOST}) [FLETCHAT_HOST]")
    p.add_argument(
        "--port", type=_port, help=f"host mode web port (default {DEFAULT_WEB_PORT}) [FLETCHAT_PORT]"
    )
    p.add_argument(
        "--peer-port",
        type=_port,
        help=f"port other peers connect to (default {DEFAULT_PEER_PORT}; 0 = any free port) "
        "[FLETCHAT_PEER_PORT]",
    )
    p.add_argument(
        "--data-dir",
        help="where this instance keeps its files (identity, history); two instances on one "
        "machine need different ones [FLETCHAT_DATA_DIR]",
    )
    p.add_argument("--name", help="prefill the name in the login dialog [FLETCHAT_NAME]")
    p.add_argument(
        "--peer",
        action="append",
        type=parse_peer,
        metavar="HOST:PORT",
        help="connect to this peer directly, for networks that block multicast; repeatable "
        "[FLETCHAT_PEERS, comma-separated]",
    )
    p.add_argument(
        "--interface",
        action="append",
        metavar="NAME_OR_IP",
        help="advertise and discover only on this interface; repeatable "
        "[FLETCHAT_INTERFACE, comma-separated]",
    )
    p.add_argument(
        "--no-lan",
        action="store_true",
        help="no discovery and no peer connections: local sessions only [FLETCHAT_NO_LAN=1]",
    )
    p.add_argument(
        "--static-dir",
        metavar="DIR",
        help="the static (Pyodide) web build host mode serves at /app/ when present "
        "(default build/web-static; make it with python -m fletchat.webbuild) [FLETCHAT_STATIC_DIR]",
    )
    p.add_argument(
        "--passphrase",
        help="host mode asks browser users for this before the chat opens; prefer the "
        "environment variable, which other users of this computer cannot see "
        "[FLETCHAT_PASSPHRASE]",
    )
    p.add_argument(
        "--download-all",
        action="store_true",
        help="download every attached file, whatever its size (default: images and voice notes "
        "up to 25 MB or --auto-download MB if higher, others up to --auto-download MB) "
        "[FLETCHAT_DOWNLOAD_ALL=1]",
    )
    p.add_argument(
        "--auto-download", type=float, metavar="MB",
        help="download attached files up to this size by themselves (default 25) "
        "[FLETCHAT_AUTO_DOWNLOAD]",
    )
    p.add_argument(
        "--files-quota", type=float, metavar="MB",
        help="room for files in the data folder (default 2048) [FLETCHAT_FILES_QUOTA]",
    )
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING... (default INFO) [FLETCHAT_LOG_LEVEL]")
    return p


def load_config(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Config:
    """Options win over environment variables, which win over defaults."""
    env = dict(os.environ if environ is None else environ)
    parser = build_parser()
    args = parser.parse_args(list(argv))

    def env_get(key: str) -> str | None:
        value = env.get(ENV_PREFIX + key)
        return value if value not in (None, "") else None

    def env_port(key: str, default: int) -> int:
        raw = env_get(key)
        if raw is None:
            return default
        try:
            return _port(raw)
        except argparse.ArgumentTypeError as err:
            parser.error(f"{ENV_PREFIX}{key}: {err}")
            raise  # unreachable: parser.error exits

    def env_seconds(key: str) -> float:
        raw = env_get(key)
        if raw is None:
            return DEFAULT_DOCTOR_AFTER
        try:
            return _seconds(raw)
        except argparse.ArgumentTypeError as err:
            parser.error(f"{ENV_PREFIX}{key}: {err}")
            raise  # unreachable: parser.error exits

    def env_list(key: str) -> list[str]:
        raw = env_get(key)
        return [item.strip() for item in raw.split(",") if item.strip()] if raw else []

    peers = list(args.peer or [])
    if not peers:
        try:
            peers = [parse_peer(item) for item in env_list("PEERS")]
        except argparse.ArgumentTypeError as err:
            parser.error(f"{ENV_PREFIX}PEERS: {err}")
    data_dir = args.data_dir or env_get("DATA_DIR")
    static_dir = args.static_dir or env_get("STATIC_DIR")
    return Config(
        web=args.web or _truthy(env_get("WEB")),
        headless=args.headless or _truthy(env_get("HEADLESS")),
        doctor=args.doctor,
        doctor_after=(
            args.doctor_after if args.doctor_after is not None else env_seconds("DOCTOR_AFTER")
        ),
        host=args.host or env_get("HOST") or DEFAULT_HOST,
        port=args.port if args.port is not None else env_port("PORT", DEFAULT_WEB_PORT),
        peer_port=(
            args.peer_port if args.peer_port is not None else env_port("PEER_PORT", DEFAULT_PEER_PORT)
        ),
        data_dir=Path(data_dir).expanduser() if data_dir else default_data_dir(env),
        name=(args.name or env_get("NAME") or "").strip(),
        peers=tuple(peers),
        interfaces=tuple(args.interface or env_list("INTERFACE")),
        lan=not (args.no_lan or _truthy(env_get("NO_LAN"))),
        log_level=(args.log_level or env_get("LOG_LEVEL") or "INFO").upper(),
        passphrase=args.passphrase or env.get(ENV_PREFIX + "PASSPHRASE", ""),
        static_dir=Path(static_dir).expanduser() if static_dir else None,
        download_all=args.download_all or _truthy(env_get("DOWNLOAD_ALL")),
        auto_download_bytes=_megabytes(args.auto_download, env_get("AUTO_DOWNLOAD"), 25 * 1000**2),
        files_quota=_megabytes(args.files_quota, env_get("FILES_QUOTA"), 2 * 1024**3),
    )


def _megabytes(option: float | None, env: str | None, default: int) -> int:
    """An option in MB (10**6 bytes), else the environment's, else ``default`` bytes."""
    raw = option if option is not None else env
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        return default
    return max(0, int(value * 1000**2))
