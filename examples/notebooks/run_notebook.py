"""Runs a notebook headless (nbclient) and fails on the first cell error.

    python run_notebook.py tracefeed-features.ipynb [executed.ipynb]
"""
import sys

import nbformat
from nbclient import NotebookClient


def main(path: str, out: str | None) -> int:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    if out:
        nbformat.write(nb, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
