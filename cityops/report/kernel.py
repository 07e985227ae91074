"""Register the named Jupyter kernel the briefing batch runs on.

``python -m cityops.report.kernel [NAME]`` installs a kernelspec for this interpreter in the
environment's prefix (``.venv/share/jupyter/kernels/NAME``), readable as the umask allows. The
kernel logs only errors, so unattended runs are not flooded with ipykernel's start-up warnings.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from cityops.fsio import apply_umask

__all__ = ["install_kernel"]


def install_kernel(name: str = "cityops", display_name: str = "Python (cityops)") -> Path:
    """Install (or refresh) the kernelspec ``name`` for ``sys.executable``; return its folder."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = {
        "argv": [
            sys.executable,
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
            "--IPKernelApp.log_level=ERROR",
        ],
        "display_name": display_name,
        "language": "python",
        "env": {"MPLBACKEND": "agg"},
        "metadata": {"debugger": True},
    }
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "kernel.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
        dest = KernelSpecManager().install_kernel_spec(tmp, name, prefix=sys.prefix)
    # The copy keeps the temporary folder's 0700: other accounts (a notebook server's)
    # could not see the kernel. It follows the umask like every output of cityops.
    apply_umask(Path(dest))
    return Path(dest)


if __name__ == "__main__":
    print(install_kernel(*sys.argv[1:2]))
