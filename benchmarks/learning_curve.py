"""Kept for running and resumed jobs: ``nequip-pol train-long`` (same arguments; nequip_pol/train/long_run.py)."""

import sys

from nequip_pol.cli import main

if __name__ == "__main__":
    sys.exit(main(["train-long", *sys.argv[1:]]))
