"""A throwaway JupyterLab server for browser tests: localhost, a random token, no trace left.

Named lab_server, not jupyter_server: tests/ is on sys.path and would shadow that package.

``JupyterLab(root)`` starts ``jupyter lab`` from this interpreter's environment in a subprocess,
serving ``root`` on a port the OS picks (``--port=0``; the real port is read back from the
server's runtime file, so parallel pytest-xdist workers never collide). Everything the server
or JupyterLab would write goes to a temporary folder:

- ``JUPYTER_CONFIG_DIR``, ``JUPYTER_DATA_DIR``, ``JUPYTER_RUNTIME_DIR`` and ``IPYTHONDIR``
  point inside it, so a developer's own configuration, user-level kernels and runtime files
  play no part. Kernels installed in the environment's prefix (``make kernel`` puts
  ``cityops`` in ``.venv/share/jupyter/kernels``) stay discoverable, as do the lab extensions
  (ipywidgets).
- checkpoints (``FileCheckpoints.checkpoint_dir``), lab workspaces and user settings live
  there too. The settings switch autosave off (running a notebook must not write its outputs
  back into the repository), JupyterLab's news and update checks off (no network) and the
  notebook's virtual scrolling off (every output stays in the page for the selectors).
- the jupyter-lsp server extension is off (it would create ``.virtual_documents`` in ``root``)
  and the extension manager is read-only (it would query a package index).
- ``MPLBACKEND`` (``agg`` under make and CI) is not passed on: a kernel takes its matplotlib
  backend from its kernelspec, and the ``cityops`` kernelspec sets ``agg`` itself.

The server is stopped with ``POST /api/shutdown`` (which also shuts down its kernels), then
SIGTERM, then SIGKILL, whatever happened in the test.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

__all__ = ["JupyterLab"]

# Lab user settings (see the module docstring).
SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/apputils-extension/notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    # every cell stays in the page (no virtual scrolling), so selectors find all outputs
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}


class JupyterLab:
    """``with JupyterLab(root) as lab:`` → ``lab.url(path)``, ``lab.base``, ``lab.token``."""

    def __init__(self, root: Path, *, start_timeout: float = 60.0, attempts: int = 3):
        self.root = Path(root).resolve()
        self.start_timeout = start_timeout
        self.attempts = attempts
        self.token = secrets.token_hex(24)
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self.log: Path | None = None

    # -- public -------------------------------------------------------------------------------

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "lab") -> str:
        """Absolute URL of ``path`` (e.g. ``lab/tree/notebooks/x.ipynb``) with the token."""
        sep = "&" if "?" in path else "?"
        return f"{self.base}/{path.lstrip('/')}{sep}token={self.token}"

    def api(self, path: str, method: str = "GET", timeout: float = 5.0):
        """JSON answer of the REST API at ``/api/<path>``."""
        req = urllib.request.Request(
            self.url(f"api/{path}"), method=method, data=b"" if method != "GET" else None
        )
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
        return json.loads(body) if body else None

    def log_tail(self, n: int = 40) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def __enter__(self) -> JupyterLab:
        self._tmp = tempfile.TemporaryDirectory(prefix="cityops-lab-")
        tmp = Path(self._tmp.name)
        for plugin, values in SETTINGS.items():
            f = tmp / "settings" / f"{plugin}.jupyterlab-settings"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(json.dumps(values), encoding="utf-8")
        try:
            for attempt in range(1, self.attempts + 1):
                if self._start(tmp, attempt):
                    return self
                self._stop()
            raise RuntimeError(f"JupyterLab did not start; server log:\n{self.log_tail()}")
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def __exit__(self, *exc) -> None:
        try:
            self._stop()
        finally:
            if self._tmp is not None:
                self._tmp.cleanup()
                self._tmp = None

    # -- internals ----------------------------------------------------------------------------

    def _env(self, tmp: Path) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            JUPYTER_CONFIG_DIR=str(tmp / "config"),
            JUPYTER_DATA_DIR=str(tmp / "data"),
            JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
            IPYTHONDIR=str(tmp / "ipython"),
            JUPYTER_PLATFORM_DIRS="1",
        )
        # MPLBACKEND=agg from make/CI is for the test process; a kernel takes its backend from
        # its kernelspec (cityops sets agg there; a plain python3 kernel gets inline).
        env.pop("MPLBACKEND", None)
        for var in ("JUPYTER_PATH", "JUPYTER_TOKEN", "JUPYTERLAB_WORKSPACES_DIR"):
            env.pop(var, None)
        return env

    def _start(self, tmp: Path, attempt: int) -> bool:
        runtime = tmp / "runtime"
        self.log = tmp / f"server-{attempt}.log"
        cmd = [
            str(Path(sys.executable).with_name("jupyter")),
            "lab",
            "--no-browser",
            "--allow-root",  # CI runs as root
            "--ip=127.0.0.1",
            "--port=0",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            "--ServerApp.password=",
            f"--ServerApp.root_dir={self.root}",
            "--ServerApp.preferred_dir=" + str(self.root),
            "--ServerApp.allow_remote_access=False",
            "--ServerApp.jpserver_extensions={'jupyter_lsp': False}",
            f"--FileCheckpoints.checkpoint_dir={tmp / 'checkpoints'}",
            f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
            f"--LabApp.user_settings_dir={tmp / 'settings'}",
            "--LabApp.news_url=",
            "--LabApp.extension_manager=readonly",
            "--ServerApp.log_level=INFO",
        ]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                cmd,
                cwd=tmp,
                env=self._env(tmp),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.start_timeout
        info = runtime / f"jpserver-{self.proc.pid}.json"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if self.port is None and info.exists():
                try:
                    self.port = int(json.loads(info.read_text())["port"])
                except (ValueError, KeyError):
                    pass  # half-written; read again
            if self.port is not None:
                try:
                    if "started" in self.api("status", timeout=2):
                        return True
                except (OSError, urllib.error.URLError, ValueError):
                    pass
            time.sleep(0.2)
        return False

    def _stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None and self.port is not None:
            try:
                self.api("shutdown", method="POST", timeout=5)
            except (OSError, urllib.error.URLError, ValueError):
                pass
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self.port = None
