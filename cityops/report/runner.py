"""Running notebook templates: find a template, keep kernels, execute, render the page.

The presentation side of the batch jobs (:mod:`cityops.brief`, :mod:`cityops.reviewing`, the
explorer's export): papermill executes a template with its parameters, the executed notebook
loses its wall-clock metadata (so reruns give identical files) and nbconvert renders it to
HTML for readers (phone-friendly tables, print styles). :class:`Kernels` keeps one Jupyter
kernel per worker thread, started early.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from pathlib import Path

from cityops.errors import InputError

__all__ = [
    "Kernels",
    "check_kernel",
    "error_line",
    "run_notebook",
    "strip_execution_metadata",
    "template_path",
    "to_html",
]


def template_path(name: str = "town_briefing.ipynb") -> Path:
    """A notebook template: in ``$CITYOPS_TEMPLATES``, ``./templates``, then the templates
    shipped with cityops (inside the installed package, or the repository's ``templates/``)."""
    from cityops._shipped import shipped_folders

    folders = [
        os.environ.get("CITYOPS_TEMPLATES"),
        Path.cwd() / "templates",
        *shipped_folders("templates"),
    ]
    for folder in folders:
        if folder and (Path(folder) / name).exists():
            return Path(folder) / name
    raise InputError(f"template {name} not found in {', '.join(map(str, filter(None, folders)))}")


def check_kernel(name: str) -> None:
    """Fail early (exit 2) when the named Jupyter kernel is not installed."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        raise InputError(
            f"Jupyter kernel {name!r} is not installed; run `make kernel` "
            f"(python -m cityops.report.kernel {name})"
        ) from None


def strip_execution_metadata(path: Path, *, stage: Path | None = None, final: Path | None = None):
    """Drop wall-clock times papermill and nbclient write, and name the final folder instead
    of the temporary one it ran in, so reruns give identical files."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if "outputs" in cell:
            cell.execution_count = None
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.id = "injected-parameters"  # papermill gives it a random id
        if stage is not None and final is not None:
            cell.source = cell.source.replace(str(stage), str(final))
    nbformat.write(nb, path)


_READER_CSS = """
.jp-OutputArea-output table { display: block; overflow-x: auto; max-width: 100%; }
@media (max-width: 700px) {
  body { font-size: 15px; }
  .jp-OutputArea-output td, .jp-OutputArea-output th { white-space: nowrap; }
}
@media print {
  .jp-OutputArea-output table { display: table; overflow: visible; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  tr, img, .jp-OutputArea-output { page-break-inside: avoid; }
  a { color: #000; text-decoration: none; }
}
"""


def _first_heading(nb) -> str:
    """Text of the first ``<h1>`` an output of the notebook shows ('' when none)."""
    import html

    for cell in nb.cells:
        for out in cell.get("outputs", []):
            found = re.search(r"<h1[^>]*>(.*?)</h1>", out.get("data", {}).get("text/html", ""),
                              re.S)  # fmt: skip
            if found:
                return html.unescape(re.sub(r"<[^>]+>", "", found.group(1))).strip()
    return ""


def to_html(notebook: Path, html_path: Path, lang: str = "zh") -> None:
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    nb = nbformat.read(notebook, as_version=4)
    # The page title is the report's own first heading (with its 【演练】 tag in a drill), not
    # nbconvert's "Notebook": it is what a phone shows in the tab and in a forwarded link.
    resources = {"metadata": {"name": _first_heading(nb) or notebook.stem}}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    if lang == "zh":
        body = body.replace('<html lang="en">', '<html lang="zh-CN">', 1)
    body = body.replace(
        "<head>",
        '<head>\n<meta name="viewport" content="width=device-width, initial-scale=1">',
        1,
    )
    body = body.replace("</head>", f"<style>{_READER_CSS}</style>\n</head>", 1)
    html_path.write_text(body, encoding="utf-8")


class Kernels:
    """Jupyter kernels for the batch: started early, one per worker thread, reused.

    Starting a kernel and importing the package cost more than a unit's briefing itself, so
    a batch starts ``warm`` kernels in the background as soon as it begins (they start while
    the batch assesses the forecast on the other core; imports happen in the first unit), keeps
    each worker's kernel from unit to unit: each notebook starts by clearing the namespace
    (the template's first cell), imports come from the kernel's module cache. A unit that
    fails for any reason gets its kernel replaced before the next unit, so one failure stays
    alone.
    """

    def __init__(self, name: str, start_timeout: int = 120, *, warm: int = 0):
        import queue

        self.name, self.start_timeout = name, start_timeout
        self._local = threading.local()
        self._all: list = []
        self._lock = threading.Lock()
        self._closed = False
        self._ready: queue.Queue = queue.Queue()
        self._warming = 0
        for _ in range(max(0, warm)):
            self._warming += 1
            threading.Thread(target=self._warm_one, daemon=True, name="cityops-kernel").start()

    def _start(self):
        import nbformat
        from nbclient import NotebookClient

        client = NotebookClient(nbformat.v4.new_notebook(), kernel_name=self.name,
                                startup_timeout=self.start_timeout)  # fmt: skip
        client.km = client.create_kernel_manager()
        client.start_new_kernel()
        km = client.km
        with self._lock:
            self._all.append(km)
            closed = self._closed
        if closed:  # the batch ended while this kernel started
            self._shutdown(km)
            return None
        return km

    def _warm_one(self) -> None:
        km = None
        try:
            km = self._start()
            # Only started here: a second client talking to the kernel from this thread
            # garbled papermill's messages under load (jupyter_client "DELIM not in
            # msg_list"), so the imports happen in the first unit.
        except Exception:  # a kernel that cannot warm up is started again by get()
            if km is not None:
                self._shutdown(km)
            km = None
        finally:
            self._ready.put(km)

    def get(self):
        km = getattr(self._local, "km", None)
        if km is None:
            with self._lock:
                waiting = self._warming > 0
                if waiting:
                    self._warming -= 1
            if waiting:
                km = self._ready.get()  # a kernel started early, or None if it failed
            if km is None or not self._alive(km):
                km = self._start()
            self._local.km = km
        return km

    def discard(self) -> None:
        """Drop this thread's kernel (after a failure): the next unit starts a fresh one."""
        km = getattr(self._local, "km", None)
        self._local.km = None
        if km is not None:
            self._shutdown(km)

    def close(self) -> None:
        with self._lock:
            kms, self._all, self._closed = self._all, [], True
        for km in kms:
            self._shutdown(km)

    @staticmethod
    def _alive(km) -> bool:
        from jupyter_core.utils import run_sync

        try:
            return bool(run_sync(km.is_alive)())
        except Exception:
            return False

    @staticmethod
    def _shutdown(km) -> None:
        from jupyter_core.utils import run_sync

        with contextlib.suppress(Exception):
            if run_sync(km.is_alive)():
                run_sync(km.shutdown_kernel)(now=True)


def run_notebook(
    template: str | Path,
    notebook: Path,
    parameters: dict,
    *,
    html: Path,
    kernel: str,
    timeout: int,
    lang: str,
    kernels: Kernels | None = None,
    stage: Path | None = None,
    final: Path | None = None,
) -> str | None:
    """Execute ``template`` with ``parameters`` into ``notebook`` and render ``html``.

    Returns None, or the one-line error of a unit that failed (a cell raised, the kernel
    died, its files could not be written: no half-written page is left). A kernel from
    ``kernels`` is reused, and replaced after a failure.
    """
    import papermill as pm

    error = None
    try:
        try:
            pm.execute_notebook(
                str(template),
                str(notebook),
                parameters=parameters,
                kernel_name=kernel,
                progress_bar=False,
                log_output=False,
                execution_timeout=timeout,
                start_timeout=120,
                km=kernels.get() if kernels is not None else None,
                # No cwd=: papermill would chdir the whole process, racing the other threads.
            )
        except Exception as err:  # a cell raised, the kernel died: the unit fails, the rest go on
            error = error_line(err)
            if kernels is not None:
                kernels.discard()  # whatever the kernel holds now, the next unit gets a new one
        if notebook.exists():
            strip_execution_metadata(notebook, stage=stage, final=final)
        if error is None:
            to_html(notebook, html, lang)
    except Exception as err:  # its files could not be written (disk full, ...): the unit fails
        error = error or error_line(err)
        with contextlib.suppress(OSError):
            html.unlink(missing_ok=True)  # no half-written page
    return error


def error_line(err: BaseException) -> str:
    """One line for a failed unit: the exception name and its last message line."""
    evalue = getattr(err, "evalue", None) or str(err).strip().splitlines()[-1:] or [repr(err)]
    message = evalue if isinstance(evalue, str) else evalue[0]
    ename = getattr(err, "ename", type(err).__name__)
    return f"{ename}: {message}"[:500]
