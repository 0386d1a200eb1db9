"""The Python daemon of a local retrain: PySpark's, importing PySpark from its installed files.

Spark starts its Python workers with ``pyspark.zip`` (and py4j's zip) first on their path.
Python cannot cache the bytecode of modules imported from a zip, so the daemon compiles
PySpark's sources on every run: about a second (more on a busy machine) before the first
task can start. When PySpark is pip-installed, the zip ships in the same wheel as the
installed package, so the two are the same version; this daemon moves the zips behind the
installed package on its path (so its workers, forked from it, import the compiled files)
and runs PySpark's daemon unchanged.

:func:`daemon_module` names this module only for that case (``spark.python.daemon.module``
in :func:`streams.retrain.job.spark_context`); a cluster's workers keep PySpark's daemon.
"""

from __future__ import annotations

import os
import sys
from importlib.machinery import PathFinder

MODULE = __name__


def installed_pyspark_zips() -> list[str]:
    """The zips of the pip-installed PySpark that Spark puts on a worker's path (empty if
    PySpark is not pip-installed: then its zips are the only copy to import)."""
    # Looked for outside the zips, which come first on a worker's path.
    spec = PathFinder.find_spec("pyspark", [p for p in sys.path if not p.endswith(".zip")])
    if spec is None or not spec.submodule_search_locations:
        return []
    lib = os.path.join(next(iter(spec.submodule_search_locations)), "python", "lib")
    try:
        names = os.listdir(lib)
    except OSError:
        return []
    return [os.path.join(lib, n) for n in names if n.endswith(".zip")]


def daemon_module() -> str | None:
    """This module if it can serve as ``spark.python.daemon.module`` here, else None."""
    return MODULE if installed_pyspark_zips() else None


def _behind_installed(path: list[str], zips: list[str]) -> list[str]:
    """``path`` with the entries that are ``zips`` moved to the end.

    >>> _behind_installed(["/p/lib/pyspark.zip", "/w", "/site"], ["/p/lib/pyspark.zip"])
    ['/w', '/site', '/p/lib/pyspark.zip']
    """
    wanted = {os.path.realpath(z) for z in zips}
    moved = [p for p in path if os.path.realpath(p) in wanted]
    return [p for p in path if p not in moved] + moved


if __name__ == "__main__":
    # The zips go first on the path only for finding ``pyspark``: nothing of PySpark is
    # imported yet (this package's __init__ imports nothing), so moving them is enough.
    sys.path[:] = _behind_installed(sys.path, installed_pyspark_zips())
    from pyspark import daemon

    daemon.manager()
