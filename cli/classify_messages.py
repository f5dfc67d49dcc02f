"""What ``classify`` tells whoever runs it besides its outputs: its exit codes, its message lines
(file names and sample IDs in them with control characters shown escaped) and the one-line
summary of a run.
"""

from __future__ import annotations

import sys
from typing import Any

from engine.core.textsafe import printable

EXIT_OK, EXIT_FATAL, EXIT_PARTIAL = 0, 2, 3


def say(text: str, file: Any = None) -> None:
    """Print a line that may hold file names or sample IDs: control characters made visible."""
    print(printable(text), file=sys.stderr if file is None else file)


def summary_line(results_counts: dict[str, Any]) -> str:
    """``"8 image(s): 7 classified (Benign 1, ...), 7 need review, 0 out of distribution, 1 failed"``."""
    c = results_counts
    per_class = ", ".join(f"{k} {v}" for k, v in c["counts"].items())
    withheld = c.get("n_withheld", 0)
    return (f"{c['n_images']} image(s): {c['n_ok']} classified ({per_class}"
            + (f"; {withheld} the model cannot judge, not counted" if withheld else "") + "), "
            f"{c['n_needs_review']} need review, {c['n_ood']} out of distribution, {c['n_error']} failed")
