"""``python -m mlrepro``: the same as the ``mlrepro`` command."""

from mlrepro.cli.main import entry

if __name__ == "__main__":
    entry()
