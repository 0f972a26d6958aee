"""``python -m tfae``: the ``tfae`` command (``tfae_cli.main``, the repository's ``cli/``).

Example:
    $ python -m tfae fit --model deep --epochs 5
"""

from tfae_cli.main import main

if __name__ == "__main__":
    main()
