"""The widget's weight: the whole loader (code, markup, styles: one file) as /embed.js serves it, gzipped at
level 9, against 5 KB.

python bench/widget_size.py        # exit status 1 when over budget
"""

from __future__ import annotations

import gzip
import sys

from leadcapture.web.widget import EMBED_PATH, minified

BUDGET = 5 * 1024


def main() -> int:
    source = EMBED_PATH.read_bytes()
    raw = minified(source)
    gzipped = len(gzip.compress(raw, compresslevel=9, mtime=0))
    print(f"widget source:  {len(source)} B")
    print(f"widget served:  {len(raw)} B")
    print(f"widget gzipped: {gzipped} B ({gzipped / BUDGET:.2f}x of {BUDGET} B budget)")
    if gzipped > BUDGET:
        print(f"over budget by {gzipped - BUDGET} B", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
