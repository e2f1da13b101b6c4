#!/usr/bin/python3
"""Write the PyTorch reference fixtures the C tests compare against.

Usage: /usr/bin/python3 tools/reference.py [model|divergence|sparse_divergence|all]

Needs Debian's python3-torch (only here: building, running and testing gkd
never needs Python). Each part lives in tools/ref_<part>.py and writes its
files under tests/fixtures/.
"""
import importlib
import os
import sys

PARTS = ["model", "divergence", "sparse_divergence"]


def main():
    want = sys.argv[1:] or ["all"]
    parts = PARTS if "all" in want else want
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    out = os.path.join(here, "..", "tests", "fixtures")
    os.makedirs(out, exist_ok=True)
    for part in parts:
        if part not in PARTS:
            sys.exit(f"reference.py: unknown part '{part}' (one of {', '.join(PARTS)}, all)")
        importlib.import_module(f"ref_{part}").write(out)


if __name__ == "__main__":
    main()
