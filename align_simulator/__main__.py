"""`python -m align_simulator`: the simulator without Django."""

import argparse
import logging
import sys

from .cli import add_arguments, serve_options
from .server import serve


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m align_simulator", description="Run the Align integration service simulator."
    )
    add_arguments(parser)
    options = vars(parser.parse_args(argv))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    serve(announce=lambda line: print(line, flush=True), **serve_options(options))
    return 0


if __name__ == "__main__":
    sys.exit(main())
