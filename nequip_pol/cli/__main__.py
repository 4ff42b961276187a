"""``python -m nequip_pol.cli VERB ...``: the ``nequip-pol`` command line."""

import sys

from nequip_pol.cli import main

if __name__ == "__main__":
    sys.exit(main())
