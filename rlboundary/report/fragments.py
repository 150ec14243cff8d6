"""HTML pieces every report page shares: the stylesheet, inlined figures, number cells and
file-name slugs (report/html.py for one run, report/compare.py for several).
"""

from __future__ import annotations

import base64
import html
import math
import re
from pathlib import Path

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:.85em;margin:1em 0}
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:right}
th{background:#f4f4f4;white-space:normal;max-width:9em}td.l{text-align:left}.ci{color:#777;font-size:.85em}
.note{background:#fff8e1;border-left:4px solid #E69F00;padding:.5em 1em}
figure{display:inline-block;margin:1em;vertical-align:top;max-width:560px}
figure.wide{display:block;max-width:100%}figure img{max-width:100%}figcaption{font-size:.85em;color:#444}
.meta{color:#666;font-size:.85em}
"""


def slug(name: str) -> str:
    """A name safe in a file name: runs of other characters become one underscore."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def fmt(v, digits: int = 3) -> str:
    """A number for an HTML cell: ``digits`` decimals, an em dash for None, NaN or infinity."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "&mdash;"
    if isinstance(v, float) and v.is_integer() and digits == 0:
        return str(int(v))
    return f"{v:.{digits}f}"


def figure_html(path: Path, caption: str) -> str:
    """A PNG inlined as a data URI in a ``<figure>`` with its caption (the report is one file)."""
    b64 = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{b64}" alt="{html.escape(path.name)}">'
            f"<figcaption>{html.escape(caption)} <i>({html.escape(path.name)})</i>"
            "</figcaption></figure>")
