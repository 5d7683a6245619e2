"""``python -m gridpilot``: the same CLI as the ``gridpilot`` console script."""

from gridpilot.cli import main

if __name__ == "__main__":
    main()
