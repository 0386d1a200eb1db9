"""``spark-submit`` entry point of ``streamrec retrain``.

    spark-submit --master spark://host:7077 streams/retrain/submit.py [retrain options]

spark-submit runs this file as a script, so it imports the package absolutely; the
executors need ``streamrec`` importable too (installed there, or ``--py-files``). The
master comes from spark-submit unless ``--master`` is also given here.
"""

from __future__ import annotations

import sys

from streams.cli import main

if __name__ == "__main__":
    sys.exit(main(["retrain", *sys.argv[1:]], prog_name="streamrec"))
