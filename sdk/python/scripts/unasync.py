#!/usr/bin/env python3
"""Derives the blocking resources (resources.py) from the async ones
(async_resources.py), as httpcore derives its sync code: drop ``async``/``await`` and
swap the async types for their blocking twins. ``--check`` exits 1 when the
committed file is out of date (the tests run it).

    python scripts/unasync.py          # rewrite src/gatepulse/resources.py
    python scripts/unasync.py --check
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "gatepulse"
SOURCE = PACKAGE / "async_resources.py"
TARGET = PACKAGE / "resources.py"

RULES = [
    (r"\basync def\b", "def"),
    (r"\bawait ", ""),
    (r"\bAsyncPaginator\b", "Page"),
    (r"\bAsyncStreamSubscription\b", "StreamSubscription"),
    (r"\bAsyncGatePulse\b", "GatePulse"),
]
HEADER = '''"""The resources of `GatePulse`. Thin typed facades: each method builds its call with
`gatepulse._operations` and sends it through the client.

Generated from async_resources.py by scripts/unasync.py: do not edit.
"""
'''


def render() -> str:
    text = SOURCE.read_text(encoding="utf-8")
    body = text[text.index('"""', 3) + 3 :]
    for pattern, replacement in RULES:
        body = re.sub(pattern, replacement, body)
    text = HEADER + "\n" + body.lstrip("\n")
    formatted = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--stdin-filename", str(TARGET), "-"],
        input=text,
        capture_output=True,
        text=True,
        check=True,
    )
    return formatted.stdout


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if TARGET.read_text(encoding="utf-8") != text:
            print(f"{TARGET} is out of date: run python scripts/unasync.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
