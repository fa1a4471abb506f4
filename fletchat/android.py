"""Android-only plumbing: the Wi-Fi multicast lock that lets mDNS work on a phone.

Why: Android's Wi-Fi driver drops multicast packets addressed to other hosts to save battery, so
zeroconf on a phone can announce itself but never hears anyone else's announcements or answers
(224.0.0.251:5353). An app that wants them must hold a ``WifiManager.MulticastLock`` (and declare
``CHANGE_WIFI_MULTICAST_STATE``; see ``[tool.flet.android.permission]`` in pyproject.toml).

How: through pyjnius (import name ``jnius``), which ``flet build apk`` packages because
pyproject.toml lists it under ``[tool.flet.android] dependencies`` (Android builds only). Flet sets
``FLET_PLATFORM=android`` in a built Android app (``flet.utils.is_android()`` reads the same
variable); everywhere else this module does nothing and never imports ``jnius``. The app's
activity class is named by ``MAIN_ACTIVITY_HOST_CLASS_NAME`` (set by Flet's Android runtime), and
the lock is taken from the application context's ``WIFI_SERVICE``.

Android 17 (API 37) adds a runtime permission, ``ACCESS_LOCAL_NETWORK``: an app targeting it gets
no LAN traffic at all (no mDNS, no connection to a peer) until the person allows it.
``request_local_network_permission()`` checks it and, when missing, asks for it through the
activity (``Activity.requestPermissions``, as pyjnius-based apps do; ``flet-permission-handler``
1.0.5 does not know this permission). The answer comes back to the activity, not to us: the
permission dialog pauses the app, and when it closes the app resumes, and ``Node.resume`` restarts
discovery, which now works if the person allowed it. Before Android 17 it is granted by default.

API: ``acquire_multicast_lock()`` at start, ``release_multicast_lock()`` at exit. Both return a
``MulticastLockResult(ok, message)`` and never raise, so the UI can show ``message`` when ``ok`` is
false ("peers on this Wi-Fi may not be found") instead of failing silently. Acquiring is idempotent.

Battery savers and a backgrounded peer: when Flet Chat goes to the background, Android's Doze and
App Standby (and vendor battery savers, which are often stricter) suspend the app's network access
in maintenance windows, may put Wi-Fi into power save (where multicast is dropped even with the
lock), and may freeze or kill the process outright. For the other peers this phone then stops
answering mDNS and heartbeats: its service record expires after its TTL and its WebSocket
connections time out, so it disappears from their peer list. Nothing is lost: messages sent
meanwhile stay in the senders' stores. When the app comes back to the foreground, the hub's
``on_resume`` hook calls ``acquire_multicast_lock()`` again (a no-op while the lock is still held),
re-announces the service (re-registers it with zeroconf) and restarts browsing, and the mesh
reconnects and syncs what it missed. A user who wants the phone to stay reachable in the
background has to exempt Flet Chat from battery optimisation in Android's settings.
"""

from __future__ import annotations

import atexit
import os
import threading
from dataclasses import dataclass
from typing import Any

LOCAL_NETWORK_PERMISSION = "android.permission.ACCESS_LOCAL_NETWORK"
LOCAL_NETWORK_API = 37  # Android 17: LAN access becomes a runtime permission
PERMISSION_GRANTED = 0  # android.content.pm.PackageManager.PERMISSION_GRANTED
PERMISSION_REQUEST_CODE = 0x1A4  # ours, echoed to onRequestPermissionsResult (which we do not use)

LOCK_TAG = "fletchat-mdns"
"""The tag Android shows for this lock (e.g. in ``dumpsys wifi``)."""

_guard = threading.Lock()
_lock: Any = None  # the android.net.wifi.WifiManager$MulticastLock while we hold it
_atexit_registered = False


@dataclass(frozen=True)
class MulticastLockResult:
    """What happened, in words a person can read: ``message`` is meant for the UI."""

    ok: bool
    message: str


def is_android() -> bool:
    """True inside a Flet app built for Android (same test as ``flet.utils.is_android()``)."""
    return os.environ.get("FLET_PLATFORM") == "android"


def _application_context(autoclass: Any) -> Any:
    """The Android application context, from the activity Flet's runtime names in the env."""
    return _activity(autoclass).getApplicationContext()


def _activity(autoclass: Any) -> Any:
    """The running activity, from the class Flet's runtime names in the env."""
    class_name = os.environ.get("MAIN_ACTIVITY_HOST_CLASS_NAME") or os.environ.get(
        "MAIN_ACTIVITY_JAVA_CLASS_NAME"
    )
    if not class_name:
        raise LookupError(
            "the Android activity is unknown (MAIN_ACTIVITY_HOST_CLASS_NAME is not set)"
        )
    activity = autoclass(class_name).mActivity
    if activity is None:
        raise LookupError(f"{class_name}.mActivity is not set yet")
    return activity


@dataclass(frozen=True)
class LocalNetworkPermission:
    """Whether this app may use the LAN; ``asked``: the system dialog was just shown."""

    granted: bool
    asked: bool
    message: str


def request_local_network_permission(ask: bool = True) -> LocalNetworkPermission:
    """On Android 17+, make sure ``ACCESS_LOCAL_NETWORK`` is granted, asking for it if not
    (``ask=False``: only check; on resume, so a refusal does not bring the dialog back forever).

    Never raises: anything that goes wrong comes back as ``granted=False`` with a message for the UI.
    Elsewhere (and before Android 17) it is granted without importing ``jnius``.
    """
    if not is_android():
        return LocalNetworkPermission(True, False, "not needed on this platform")
    try:
        from jnius import autoclass  # Android only; packaged via [tool.flet.android]
    except ImportError as e:
        return _no_lan(f"pyjnius is not available in this build ({e})", asked=False)
    try:
        sdk = int(autoclass("android.os.Build$VERSION").SDK_INT)
        if sdk < LOCAL_NETWORK_API:
            return LocalNetworkPermission(True, False, f"not a runtime permission on API {sdk}")
        activity = _activity(autoclass)
        if activity.checkSelfPermission(LOCAL_NETWORK_PERMISSION) == PERMISSION_GRANTED:
            return LocalNetworkPermission(True, False, "local network access allowed")
        if not ask:
            return _no_lan("local network access is not allowed", asked=False)
        activity.requestPermissions([LOCAL_NETWORK_PERMISSION], PERMISSION_REQUEST_CODE)
    except Exception as e:  # noqa: BLE001 - LookupError, JavaException: report, never raise
        return _no_lan(f"could not ask for local network access: {e}", asked=False)
    return _no_lan("Flet Chat asked for access to your local network", asked=True)


def _no_lan(reason: str, asked: bool) -> LocalNetworkPermission:
    return LocalNetworkPermission(
        False,
        asked,
        f"{reason}. Without it Android 17 blocks all local network traffic: allow "
        "\"Local network\" for Flet Chat (Settings > Apps > Flet Chat > Permissions) to find people.",
    )


def acquire_multicast_lock() -> MulticastLockResult:
    """Hold a Wi-Fi multicast lock on Android so mDNS discovery can hear other peers.

    Returns ``ok=True`` with "not needed on this platform" anywhere but Android (without importing
    ``jnius``), and ``ok=False`` with a readable reason when the lock cannot be had.
    """
    global _lock, _atexit_registered
    if not is_android():
        return MulticastLockResult(True, "not needed on this platform")
    with _guard:
        if _lock is not None:
            try:
                if _lock.isHeld():
                    return MulticastLockResult(True, "Wi-Fi multicast lock already held")
                _lock.acquire()
                return MulticastLockResult(True, "Wi-Fi multicast lock re-acquired")
            except Exception as e:  # noqa: BLE001 - jnius.JavaException is an Exception; report, never raise
                _lock = None
                return _failed(f"could not re-acquire the Wi-Fi multicast lock: {e}")
        try:
            from jnius import autoclass, cast  # Android only; packaged via [tool.flet.android]
        except ImportError as e:
            return _failed(f"pyjnius is not available in this build ({e})")
        try:
            context = _application_context(autoclass)
            context_class = autoclass("android.content.Context")
            service = context.getSystemService(context_class.WIFI_SERVICE)
            if service is None:
                return _failed("WifiManager is unavailable on this device (no Wi-Fi service)")
            wifi = cast("android.net.wifi.WifiManager", service)
            lock = wifi.createMulticastLock(LOCK_TAG)
            lock.setReferenceCounted(True)
            lock.acquire()
        except Exception as e:  # noqa: BLE001 - LookupError, JavaException (SecurityException), ...
            return _failed(f"could not acquire the Wi-Fi multicast lock: {e}")
        _lock = lock
        if not _atexit_registered:
            atexit.register(release_multicast_lock)
            _atexit_registered = True
        return MulticastLockResult(True, "Wi-Fi multicast lock held")


def release_multicast_lock() -> MulticastLockResult:
    """Release the lock taken by :func:`acquire_multicast_lock`; safe to call any time."""
    global _lock
    with _guard:
        lock, _lock = _lock, None
    if lock is None:
        if is_android():
            return MulticastLockResult(True, "no Wi-Fi multicast lock was held")
        return MulticastLockResult(True, "not needed on this platform")
    try:
        if lock.isHeld():
            lock.release()
    except Exception as e:  # noqa: BLE001 - a failed release is reported, not raised
        return MulticastLockResult(False, f"could not release the Wi-Fi multicast lock: {e}")
    return MulticastLockResult(True, "Wi-Fi multicast lock released")


def _failed(reason: str) -> MulticastLockResult:
    return MulticastLockResult(
        False,
        f"{reason}. Other Flet Chat devices on this Wi-Fi may not be found automatically.",
    )
