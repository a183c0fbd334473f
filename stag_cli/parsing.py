"""The argument parser of every stag command: an error is one line naming the argument."""
from __future__ import annotations

import argparse
from typing import NoReturn


class OneLineParser(argparse.ArgumentParser):
    """argparse's parser whose errors are one line (``prog: error: ...``) without the usage block,
    which ``--help`` shows; sub-parsers are made of the same class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
