"""``python -m causalnn``: the ``causalnn`` command line."""
from causalnn.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
