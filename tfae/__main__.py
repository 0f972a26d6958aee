"""``python -m tfae``: the ``tfae`` command (``cli.main``).

Example:
    $ python -m tfae fit --model deep --epochs 5
"""

from cli.main import main

if __name__ == "__main__":
    main()
