"""``python -m tfae``: the ``tfae`` command (``cli.main``)."""

from cli.main import main

main()
