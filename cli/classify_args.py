"""The ``classify`` command's command line: its help text and its options (argparse), apart from
what runs it (:mod:`cli.classify`).
"""

from __future__ import annotations

import argparse

from cli.signin import add_account_option
from engine.core.choices import BackendName, DeviceName, PrecisionName
from engine.store.naming import LOOSE_SAMPLE_ID


def _positive_int(text: str) -> int:
    """--batch-size, --workers: a whole number of at least 1 (else a usage error, exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


_DESCRIPTION = """\
Classify image files and folders (searched recursively) and write one CSV row per image.

Result store (--db FILE): the results are committed to the result database as they arrive,
a batch of --batch-size images per transaction.
Each folder INPUT is one sample, its sample ID the folder's name; a folder whose name is
already the ID of another folder's sample (in the store or in this run) becomes "NAME (2)". Image files named directly form one sample named after their common
parent folder, or "loose-files" when they lie in different folders. Running the same command
again (e.g. after an interruption) classifies only the images that model has not classified
yet; the CSV/JSON still list every image once, in the usual order, stored results read back
from the store. A sample that is signed off is not changed: its stored results are output as
they are, and images not in it get an error row.

Report (--report FILE.pdf): without --db, one PDF of all images of the run (sample ID: the
folder's name when a single folder was given, else "classify-run"). With --db, one PDF per
sample, with the reviews from the store: FILE.pdf for a single sample, else
FILE-<sample ID>.pdf beside it. Failed images are listed with their reason. Grad-CAM
thumbnails only with --heatmaps. Research use only - not a medical device.

Outputs (checked before anything is classified; a clash is an error, exit 2, nothing
written): no output may be an input (an image found, a file named, an input folder, the
--db database, the model's files) or another output (--out, --json, each PDF, each heat
map). An output with an image file name (.png, .jpg, ...) may not lie inside an input
folder, nor may the --heatmaps folder: the next run would classify them as images of the
sample. Other files may (FOLDER/results.csv is fine). The CSV and JSON are written to
temporary files beside their targets and renamed into place together when the run is
complete: a failure (a full disk) leaves the files that were there untouched. CSV text
cells starting with = + - @, tab or CR get a leading ' (no spreadsheet formula); the JSON
keeps the exact values. Files larger than 64 MB ($ALLSIGHT_MAX_IMAGE_MB) are not read:
they get an error row.
"""


def add_classify_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``classify`` subcommand and its options to ``sub``; returns its parser (the caller
    sets what runs it)."""
    p = sub.add_parser("classify", help="classify images and folders; write a CSV (and JSON, heat maps, PDF)",
                       description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders (searched recursively)")
    p.add_argument("--model", metavar="ID|PATH", help="shipped model id (default resnet18) or a .safetensors path")
    p.add_argument("--out", metavar="results.csv", help="CSV file, one row per image (default: standard output)")
    p.add_argument("--json", metavar="results.json", help="also write every result and a summary as JSON")
    p.add_argument("--heatmaps", metavar="DIR", help="write a Grad-CAM overlay DIR/<name>_gradcam.png per image "
                   "(<name>_2_gradcam.png... for repeated names; not inside an input folder) and show them in "
                   "the --report PDF")
    p.add_argument("--db", metavar="FILE", help="record every result in this result database (created if "
                   "needed; 'default' = the application's own database) and resume from it; a folder INPUT "
                   "is a sample named after the folder, loose files one sample named after their common "
                   f"parent folder or '{LOOSE_SAMPLE_ID}'")
    p.add_argument("--report", metavar="report.pdf", help="write a PDF sample report (with --db: one per "
                   "sample, <stem>-<sample ID>.pdf when there are several)")
    p.add_argument("--operator", default="", metavar="NAME",
                   help="who prepared the sample, as named on the report (default: who runs this); the store "
                        "records every change under the OS login or the signed-in --account, never this name")
    p.add_argument("--lab-name", default="", metavar="TEXT", help="lab name printed on the report")
    add_account_option(p)
    p.add_argument("--device", choices=[d.value for d in DeviceName], default=DeviceName.AUTO.value)
    p.add_argument("--backend", choices=[b.value for b in BackendName], default=BackendName.AUTO.value,
                   help="what runs the network: auto = ONNX Runtime on the CPU (exported from the "
                        "weights once and cached), torch on a GPU")
    p.add_argument("--precision", choices=[x.value for x in PrecisionName], default=None,
                   help="which graph runs the network on the CPU: auto (default, or $ALLSIGHT_PRECISION) = INT8 "
                        "with its fp32 check where the model has one and it is faster on this CPU; fp32; int8")
    p.add_argument("--batch-size", type=_positive_int, default=64, metavar="N")
    p.add_argument("--workers", type=_positive_int, default=2, metavar="N", help="image decoding threads")
    return p
