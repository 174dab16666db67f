"""Headless Chromium for the tests of web pages, driven by Selenium and always quit.

`chromium(workdir=...)` starts Debian's `chromium` through its `chromedriver` (no download, no
Selenium Manager), with a fresh profile, a page-load timeout and outside hosts made unreachable;
on exit it quits the browser and fails the test if any process of that profile is left.
It records every request the page makes, so a test can assert nothing was fetched from outside.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import require_program
from tests.helpers import wait_until

# Headless Chromium as root in a container (no sandbox, no GPU), and nothing of the browser's
# own talks to the network: no QUIC, first-run page, background fetches, updates or sync.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # A page that regresses to a CDN fails fast here (and is caught by `outside_requests`)
    # instead of waiting on the internet or fetching from it.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
)
BROWSER_SCHEMES = frozenset({"chrome", "chrome-untrusted", "devtools"})
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


class Browser:
    """One headless Chromium; `quit()` ends it and everything it started."""

    def __init__(self, *, profile: Path, page_load_timeout: float = 15.0) -> None:
        self.profile = profile
        options = webdriver.ChromeOptions()
        options.binary_location = require_program("chromium")
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.add_argument("--window-size=1280,900")
        # Network events of the page (performance) and its console messages (browser).
        options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
        # Every process of this browser inherits the marker, even those that leave the tree
        # (crashpad's handler is re-parented to init), so `quit()` can find what is left.
        self._marker = f"NETMON_TEST_BROWSER={profile}"
        self._service = Service(
            require_program("chromedriver"),
            log_output=str(profile.parent / "chromedriver.log"),
            # Crashpad's database goes under $XDG_CONFIG_HOME, not the profile: keep it ours too.
            env={
                **os.environ,
                "NETMON_TEST_BROWSER": str(profile),
                "XDG_CONFIG_HOME": str(profile / "config"),
            },
        )
        try:
            self.driver = webdriver.Chrome(service=self._service, options=options)
        except BaseException:
            self._service.stop()
            self._end_leftovers()
            raise
        try:
            self.driver.set_page_load_timeout(page_load_timeout)
            self.driver.set_script_timeout(page_load_timeout)
        except BaseException:
            self.quit()
            raise
        self._requests: list[str] = []
        self._console: list[dict[str, Any]] = []
        self._collect_logs()
        self._requests.clear()  # the browser's own start page, not a page under test
        self._console.clear()

    # -- pages ------------------------------------------------------------------------------

    def open(self, url: str) -> None:
        self.driver.get(url)
        self._collect_logs()

    def reload(self) -> None:
        self.driver.refresh()
        self._collect_logs()

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def attributes(self, css: str, *names: str) -> list[dict[str, str | None]]:
        """The named attributes of every element matching `css`, read in one round trip."""
        result = self.driver.execute_script(
            "return [...document.querySelectorAll(arguments[0])].map("
            "e => Object.fromEntries(arguments[1].map(n => [n, e.getAttribute(n)])));",
            css,
            list(names),
        )
        return list(result)

    def wait_for(self, condition: Any, *, timeout: float, what: str) -> Any:
        """Poll `condition(driver)` until truthy, failing with `what` after `timeout`."""
        return WebDriverWait(self.driver, timeout, poll_frequency=0.2).until(
            condition, message=f"timed out after {timeout}s waiting for {what}"
        )

    # -- what the page fetched and said ----------------------------------------------------------

    def _collect_logs(self) -> None:
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] != "Network.requestWillBeSent":
                continue
            params = message["params"]
            if urlsplit(params.get("documentURL", "")).scheme in BROWSER_SCHEMES:
                continue  # a page of the browser's own, such as the new tab page
            self._requests.append(params["request"]["url"])
        self._console.extend(self.driver.get_log("browser"))

    @property
    def requests(self) -> list[str]:
        """Every URL the pages asked for so far (scripts' fetches included), in order."""
        self._collect_logs()
        return list(self._requests)

    def outside_requests(self) -> list[str]:
        """URLs the pages requested (network log and resource timing) from any non-local host."""
        timed = self.driver.execute_script(
            "return performance.getEntries().map(e => e.name).filter(n => n.includes('://'));"
        )
        urls = [*self.requests, *timed, self.driver.current_url]
        return sorted({url for url in urls if not _local(url)})

    def console_errors(self) -> list[str]:
        self._collect_logs()
        return [entry["message"] for entry in self._console if entry["level"] == "SEVERE"]

    # -- layout and screenshots -----------------------------------------------------------------

    @contextlib.contextmanager
    def viewport(self, width: int, *, height: int = 800, mobile: bool = False) -> Iterator[None]:
        """Lay the page out `width` CSS pixels wide (as a phone does, honouring its viewport
        meta tag, if `mobile`) until the block ends."""
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
        )
        try:
            yield
        finally:
            self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

    def screenshot(self, path: Path) -> Path:
        """The whole page, from top to bottom, as wide as the viewport, as a PNG at `path`."""
        width, height = self.driver.execute_script(
            "return [window.innerWidth, document.documentElement.scrollHeight];"
        )
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
            },
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def overflow(self) -> int:
        """How many CSS pixels the page is wider than the viewport (a sideways scroll if > 0)."""
        return int(
            self.driver.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth;"
            )
        )

    # -- the end -------------------------------------------------------------------------------

    def processes(self) -> list[int]:
        """PIDs of the live processes of this browser (chromedriver, chromium and its helpers)."""
        return _processes_with(self._marker, self.profile)

    def quit(self) -> None:
        """Quit the browser; fail if a process of this profile outlives it (it is then killed)."""
        with contextlib.suppress(Exception):
            self.driver.quit()
        driver_process = self._service.process
        if driver_process is not None and driver_process.poll() is None:
            driver_process.kill()
            driver_process.wait(timeout=5)
        self._end_leftovers()

    def _end_leftovers(self) -> None:
        """Wait a little for the processes of this browser to exit; kill and fail if any stay."""
        try:
            wait_until(
                lambda: not self.processes(),
                timeout=5,
                what="chromium to exit",
            )
        except AssertionError:
            left = self.processes()
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"chromium processes left after quit (killed): {left}") from None


@contextlib.contextmanager
def chromium(*, workdir: Path | None = None, page_load_timeout: float = 15.0) -> Iterator[Browser]:
    """A headless Chromium with a fresh profile under `workdir`, quit on the way out."""
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chromium-")))
        profile = Path(tempfile.mkdtemp(prefix="profile-", dir=workdir))
        browser = Browser(profile=profile, page_load_timeout=page_load_timeout)
        try:
            yield browser
        finally:
            browser.quit()


def _local(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about", "javascript", "file"):
        return True
    return parts.hostname in LOCAL_HOSTS


def _processes_with(marker: str, profile: Path) -> list[int]:
    """PIDs of live processes of a browser, zombies excluded.

    The marker is in the environment of those started directly; the zygote rewrites the
    environment area of its children, which carry `--user-data-dir` on their command line.
    """
    argument = f"--user-data-dir={profile}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "stat").read_text().split(") ", 1)[1].startswith("Z"):
                continue
            environ = (entry / "environ").read_bytes().split(b"\0")
            cmdline = (entry / "cmdline").read_bytes()  # rewritten by the zygote: one string
        except (OSError, IndexError):
            continue
        if marker.encode() in environ or argument in cmdline:
            found.append(int(entry.name))
    return found
