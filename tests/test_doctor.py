"""The network doctor: the pure diagnosis per observation, then each fault made for real on
namespaced hosts (iptables rules, a link taken down, a tunnel route, multicast filtered, another
subnet) with ``python -m fletchat.doctor --json`` run on the host that finds nobody.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace

import pytest

from fletchat.doctor import (
    Cause,
    Diagnosis,
    Interface,
    Observations,
    PeerProbe,
    Tcp,
    diagnose,
    firewall_command,
    is_vpn_interface,
)
from tests.conftest import ROOT, need
from tests.lan import lan_available, start_headless_peer, virtual_lan

ETH = Interface("eth0", "192.168.1.10", 24)
LO = Interface("lo", "127.0.0.1", 8)


def peer(**changes) -> PeerProbe:
    base = PeerProbe(
        name="Bob",
        address="192.168.1.20",
        port=8551,
        tcp=Tcp.OPEN,
        unicast_mdns=True,
        route_interface="eth0",
        on_local_subnet=True,
    )
    return replace(base, **changes)


def seen(*peers: PeerProbe, **changes) -> Observations:
    base = Observations(
        interfaces=(LO, ETH),
        own_query_echoed=True,
        mdns_heard_from=tuple(p.address for p in peers),
        peers=peers,
        system="Linux",
    )
    return replace(base, **changes)


# --- the diagnosis, pure --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "observations, cause",
    [
        (seen(peer()), Cause.OK),
        (seen(interfaces=(LO,)), Cause.NO_INTERFACE),
        (seen(peer(), interfaces=(LO, replace(ETH, up=False))), Cause.NO_INTERFACE),
        (seen(own_query_echoed=False), Cause.MULTICAST_LOCAL),
        (seen(), Cause.MULTICAST_NETWORK),
        (seen(mdns_heard_from=("192.168.1.1",)), Cause.NO_PEERS),
        (seen(peer(tcp=Tcp.REFUSED, unicast_mdns=False)), Cause.FIREWALL),
        (seen(peer(tcp=Tcp.TIMEOUT, unicast_mdns=True)), Cause.FIREWALL),
        (seen(peer(tcp=Tcp.TIMEOUT, unicast_mdns=False)), Cause.AP_ISOLATION),
        (seen(peer(tcp=Tcp.TIMEOUT, unicast_mdns=False, route_interface="wg0")), Cause.VPN_ROUTE),
        (seen(multicast_route_interface="tun0"), Cause.VPN_ROUTE),
        (
            seen(
                peer(
                    address="10.0.5.20",
                    tcp=Tcp.UNREACHABLE,
                    route_interface="",
                    on_local_subnet=False,
                )
            ),
            Cause.OTHER_SUBNET,
        ),
    ],
    ids=lambda v: v.value if isinstance(v, Cause) else "",
)
def test_each_observation_names_its_cause(observations, cause):
    diagnosis = diagnose(observations)
    assert diagnosis.causes[0] is cause, diagnosis.text()
    assert diagnosis.ok is (cause is Cause.OK)
    assert all(f.summary for f in diagnosis.findings)
    assert all(f.fix for f in diagnosis.findings if f.cause is not Cause.OK)


def test_a_reachable_peer_on_another_subnet_is_fine():
    probe = peer(address="10.0.5.20", on_local_subnet=False)
    assert diagnose(seen(probe)).causes == (Cause.OK,)


def test_every_peer_gets_its_own_finding():
    good, walled = peer(name="Ann"), peer(name="Bob", address="192.168.1.21", tcp=Tcp.REFUSED)
    diagnosis = diagnose(seen(good, walled))
    assert [(f.peer, f.cause) for f in diagnosis.findings] == [
        ("Ann", Cause.OK),
        ("Bob", Cause.FIREWALL),
    ]
    assert not diagnosis.ok
    assert json.loads(diagnosis.to_json())["findings"][1]["cause"] == "firewall"


@pytest.mark.parametrize(
    "system, tools, command",
    [
        ("Linux", ("ufw",), "sudo ufw allow 8551/tcp"),
        (
            "Linux",
            ("firewall-cmd",),
            "sudo firewall-cmd --permanent --add-port=8551/tcp && sudo firewall-cmd --reload",
        ),
        ("Linux", (), "sudo iptables -I INPUT -p tcp --dport 8551 -j ACCEPT"),
        (
            "Windows",
            (),
            (
                'netsh advfirewall firewall add rule name="Flet Chat TCP 8551" dir=in '
                "action=allow protocol=TCP localport=8551"
            ),
        ),
    ],
)
def test_the_firewall_fix_is_the_exact_command_for_the_os(system, tools, command):
    assert firewall_command(system, 8551, "tcp", tools) == command
    finding = diagnose(seen(peer(tcp=Tcp.REFUSED), system=system, firewall_tools=tools))
    assert command in finding.findings[0].fix


def test_macos_and_android_get_their_own_advice():
    assert "socketfilterfw --add" in firewall_command("Darwin", 8551)
    assert "VPN" in firewall_command("Android", 8551)
    text = diagnose(seen(own_query_echoed=False, system="Android")).text()
    assert "multicast lock" in text


@pytest.mark.parametrize(
    "name, label, vpn",
    [
        ("wg0", "", True),
        ("tun0", "", True),
        ("utun3", "", True),
        ("tailscale0", "", True),
        ("eth0", "", False),
        ("wlan0", "", False),
        ("{6B29FC40-CA47-1067-B31D-00DD010662DA}", "WireGuard Tunnel", True),
        ("{0B29FC40-CA47-1067-B31D-00DD010662DA}", "Intel(R) Wi-Fi 6 AX201", False),
    ],
)
def test_vpn_interfaces_are_recognised(name, label, vpn):
    assert is_vpn_interface(name, label) is vpn


def test_text_report_marks_what_to_fix():
    text = Diagnosis(diagnose(seen(peer(tcp=Tcp.REFUSED))).findings).text()
    assert text.startswith("FIX ") and "sudo iptables" in text


# --- each fault for real, on namespaced hosts -----------------------------------------------------


def _reject_tcp(lan, me, other):
    other.run(["iptables", "-A", "INPUT", "-p", "tcp", "--dport", "8551", "-j", "REJECT",
               "--reject-with", "tcp-reset"])  # fmt: skip


def _drop_tcp(lan, me, other):
    other.run(["iptables", "-A", "INPUT", "-p", "tcp", "--dport", "8551", "-j", "DROP"])


def _isolate_clients(lan, me, other):
    """What AP isolation does: multicast still crosses, nothing unicast from me reaches them."""
    other.run(["iptables", "-A", "INPUT", "-s", me.ip, "-m", "pkttype", "--pkt-type", "unicast",
               "-j", "DROP"])  # fmt: skip


def _drop_mdns_here(lan, me, other):
    me.run(["iptables", "-A", "INPUT", "-p", "udp", "--dport", "5353", "-j", "DROP"])


def _vpn_route(lan, me, other):
    """A tunnel interface that takes the route to the peer (as a VPN pushing the LAN's range)."""
    me.run(["ip", "link", "add", "tun0", "type", "veth", "peer", "name", "tun0p"])
    for link in ("tun0", "tun0p"):
        me.run(["ip", "link", "set", link, "up"])
    me.run(["ip", "addr", "add", "10.99.0.1/24", "dev", "tun0"])
    me.run(["ip", "route", "add", f"{other.ip}/32", "dev", "tun0"])


def _multicast_dropped_by_network(lan, me, other):
    lan.block_all_multicast()


def _link_down(lan, me, other):
    me.run(["ip", "link", "set", me.iface, "down"])


def _nothing(lan, me, other):
    pass


def _no_flet_chat_but_other_mdns(lan, me, other):
    """Another mDNS device (a printer, say) answers, but no Flet Chat."""
    script = (
        "import socket, sys, time\n"
        "from zeroconf import Zeroconf, ServiceInfo\n"
        "zc = Zeroconf(interfaces=[sys.argv[1]])\n"
        "zc.register_service(ServiceInfo('_ipp._tcp.local.', 'Printer._ipp._tcp.local.',\n"
        "    addresses=[socket.inet_aton(sys.argv[1])], port=631, server='printer.local.'))\n"
        'print(\'{"ev": "registered"}\', flush=True)\n'
        "time.sleep(600)\n"
    )
    proc = other.spawn_json([sys.executable, "-c", script, other.ip])
    assert proc.wait_for(lambda e: e.get("ev") == "registered", timeout=30) is not None


FAULTS = [
    (_nothing, Cause.OK, True),
    (_reject_tcp, Cause.FIREWALL, True),
    (_drop_tcp, Cause.FIREWALL, True),
    (_isolate_clients, Cause.AP_ISOLATION, True),
    (_vpn_route, Cause.VPN_ROUTE, True),
    (_drop_mdns_here, Cause.MULTICAST_LOCAL, True),
    (_multicast_dropped_by_network, Cause.MULTICAST_NETWORK, True),
    (_link_down, Cause.NO_INTERFACE, True),
    (_no_flet_chat_but_other_mdns, Cause.NO_PEERS, False),
]


def run_doctor(host, *extra: str) -> dict:
    result = host.run(
        [sys.executable, "-m", "fletchat.doctor", "--json", "--listen", "3", *extra],
        check=False,
        timeout=120,
    )
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["ok"] is (result.returncode == 0)
    return report


@pytest.mark.parametrize(
    "fault, cause, with_peer", FAULTS, ids=[f[0].__name__.strip("_") for f in FAULTS]
)
def test_the_doctor_names_the_fault_on_a_real_lan(tmp_path, fault, cause, with_peer):
    need(*lan_available())
    with virtual_lan(2, ipv6=False) as lan:
        me, other = lan
        if with_peer:
            start_headless_peer(other, "Bob", tmp_path / "bob")
        fault(lan, me, other)
        report = run_doctor(me)
        causes = [f["cause"] for f in report["findings"]]
        assert causes[0] == cause.value, report
        if cause in (Cause.FIREWALL, Cause.AP_ISOLATION, Cause.VPN_ROUTE, Cause.OK):
            assert report["findings"][0]["peer"] == "Bob"  # named from its validated TXT record
        if cause is Cause.FIREWALL:
            assert "iptables -I INPUT -p tcp --dport 8551 -j ACCEPT" in report["findings"][0]["fix"]


def test_a_peer_on_another_subnet(tmp_path):
    """The other host is on the same wire but in another subnet: mDNS is heard, TCP has no route."""
    need(*lan_available())
    with virtual_lan(2, ipv6=False) as lan:
        me, other = lan
        other.run(["ip", "addr", "flush", "dev", other.iface])
        other.run(["ip", "addr", "add", "10.214.77.12/24", "dev", other.iface])
        start_headless_peer(other, "Bob", tmp_path / "bob")
        report = run_doctor(me, "--peer", "10.214.77.12:8551")
        causes = {f["cause"] for f in report["findings"]}
        assert causes == {Cause.OTHER_SUBNET.value}, report
        assert "another subnet" in report["findings"][0]["summary"]


def test_main_py_doctor_prints_the_report(tmp_path):
    """``main.py --doctor`` on a host alone: the cause in words, exit status 1."""
    need(*lan_available())
    with virtual_lan(1, ipv6=False) as lan:
        (me,) = lan
        result = me.run(
            [sys.executable, str(ROOT / "main.py"), "--doctor", "--data-dir", str(tmp_path)],
            check=False,
            timeout=120,
        )
        assert result.returncode == 1, result.stderr
        assert "No other device answered over mDNS" in result.stdout
        assert "--peer THEIR-ADDRESS:8551" in result.stdout


def test_a_peer_alone_on_a_network_that_drops_multicast_says_why(tmp_path):
    """No --doctor needed: after --doctor-after seconds alone, the app runs the doctor itself
    (the headless peer prints its verdict; the UI shows it in the LAN warning)."""
    need(*lan_available())
    with virtual_lan(2, ipv6=False) as lan:
        me, other = lan
        lan.block_all_multicast()
        start_headless_peer(other, "Bob", tmp_path / "bob", "--doctor-after", "0")
        ann = start_headless_peer(me, "Ann", tmp_path / "ann", "--doctor-after", "2")
        verdict = ann.wait_for(lambda e: e.get("event") == "network_doctor", timeout=60)
        assert verdict is not None, ann.stderr_text()
        assert verdict["ok"] is False
        assert verdict["findings"][0]["cause"] == Cause.MULTICAST_NETWORK.value
        assert "--peer THEIR-ADDRESS:8551" in verdict["findings"][0]["fix"]


def test_doctor_after_option():
    from fletchat.config import DEFAULT_DOCTOR_AFTER, load_config

    assert load_config([], {}).doctor_after == DEFAULT_DOCTOR_AFTER
    assert load_config(["--doctor-after", "0"], {}).doctor_after == 0
    assert load_config([], {"FLETCHAT_DOCTOR_AFTER": "12.5"}).doctor_after == 12.5
    with pytest.raises(SystemExit):
        load_config(["--doctor-after", "soon"], {})


def _answer(instance: str, port: int) -> bytes:
    from zeroconf import DNSOutgoing, DNSPointer, DNSService
    from zeroconf.const import _CLASS_IN, _FLAGS_AA, _FLAGS_QR_RESPONSE, _TYPE_PTR, _TYPE_SRV

    from fletchat.discovery import SERVICE_TYPE

    out = DNSOutgoing(_FLAGS_QR_RESPONSE | _FLAGS_AA)
    out.add_answer_at_time(DNSPointer(SERVICE_TYPE, _TYPE_PTR, _CLASS_IN, 120, instance), 0)
    out.add_answer_at_time(
        DNSService(instance, _TYPE_SRV, _CLASS_IN, 120, 0, 0, port, "host.local."), 0
    )
    return out.packets()[0]


def test_what_is_heard_from_this_device_is_never_a_peer():
    """A Flet Chat running here answers on every interface, loopback included."""
    from fletchat.netprobe import _Heard

    heard = _Heard({"192.168.1.10", "127.0.0.1"}, b"our query")
    instance = "Bob (ab)._fletchat._tcp.local."
    heard.add(_answer(instance, 8551), "127.0.0.1")
    heard.add(_answer(instance, 8551), "192.168.1.10")
    heard.add(b"our query", "127.0.0.1")
    assert heard.peers == {} and heard.senders == set() and not heard.echoed
    heard.add(b"our query", "192.168.1.10")
    heard.add(_answer(instance, 8551), "192.168.1.20")
    assert heard.echoed and heard.senders == {"192.168.1.20"}
    assert heard.peers == {instance: ("Bob (ab)", "192.168.1.20", 8551)}


def test_a_hostile_instance_name_cannot_write_to_the_terminal():
    from fletchat.netprobe import _Heard

    heard = _Heard({"192.168.1.10"}, b"q")
    instance = "\x1b[2J\x1b]0;pwned\x07Eve._fletchat._tcp.local."
    heard.add(_answer(instance, 8551), "192.168.1.66")
    ((name, address, port),) = heard.peers.values()
    assert name.isprintable() and "\x1b" not in name and (address, port) == ("192.168.1.66", 8551)
