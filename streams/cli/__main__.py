"""``python -m streams.cli``: the same as the ``streamrec`` console script."""

from streams.cli import main

main(prog_name="streamrec")
