"""Where Prefect's own records go during a ``stag-ingest`` run: a log file of the run, not the terminal.

Prefect's logging config (``prefect/logging/logging.yml``) sends every record to a console
handler on standard error; its flow and task records also go to the Prefect API (the UI), which
this leaves alone. ``prefect_records_to(log_file)``:

- writes a copy of Prefect's config in which the console and debug handlers are a file handler on
  ``log_file`` (``verbose``: the console stays and the file handler is added), and points
  ``PREFECT_LOGGING_SETTINGS_PATH`` at it, so that every process started in the block (Dask
  workers), and this one when it imports Prefect later, logs there;
- where Prefect is already imported (and configured) in this process, moves its console
  handlers' records to the same file for the block's duration.

Both are undone when the block ends, and the config file removed.
"""
from __future__ import annotations

import importlib.util
import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import yaml

SETTINGS_VARIABLE = "PREFECT_LOGGING_SETTINGS_PATH"
CONSOLE_HANDLERS = ("console", "debug")  # Prefect's handlers that write to the terminal (logging.yml)
CONSOLE_CLASSES = ("PrefectConsoleHandler", "_SafeStreamHandler")  # their classes, once configured
FILE_FORMAT = "%(asctime)s | %(levelname)-7s | %(processName)s | %(name)s - %(message)s"


def prefect_logging_config(log_file: Path, verbose: bool) -> dict:
    """Prefect's own logging config with its terminal handlers writing to ``log_file`` instead
    (``verbose``: as well)."""
    spec = importlib.util.find_spec("prefect")  # its file, without importing it
    default = Path(next(iter(spec.submodule_search_locations))) / "logging" / "logging.yml"
    config = yaml.safe_load(default.read_text())
    config["handlers"]["run_file"] = {"class": "logging.FileHandler", "filename": str(log_file), "level": 0,
                                      "formatter": "standard", "encoding": "utf-8", "delay": True}
    for logger in [config.get("root", {}), *config.get("loggers", {}).values()]:
        handlers = logger.get("handlers")
        if handlers and any(h in CONSOLE_HANDLERS for h in handlers):
            kept = handlers if verbose else [h for h in handlers if h not in CONSOLE_HANDLERS]
            logger["handlers"] = [*kept, "run_file"]
    return config


def _live_console_handlers() -> list[tuple[logging.Logger, logging.Handler]]:
    """(logger, handler) for every terminal handler Prefect has configured in this process."""
    loggers = [logging.getLogger()] + [logger for logger in logging.Logger.manager.loggerDict.values()
                                       if isinstance(logger, logging.Logger)]
    return [(logger, handler) for logger in loggers for handler in logger.handlers
            if type(handler).__name__ in CONSOLE_CLASSES]


@contextmanager
def prefect_records_to(log_file: Path, verbose: bool = False) -> Iterator[Path]:
    """Within the block, Prefect's records (this process and those it starts) go to ``log_file``
    and, only when ``verbose``, to the terminal as well."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    settings = log_file.with_suffix(".logging.yml")
    settings.write_text(yaml.safe_dump(prefect_logging_config(log_file, verbose), sort_keys=False))
    previous = os.environ.get(SETTINGS_VARIABLE)
    os.environ[SETTINGS_VARIABLE] = str(settings)
    file_handler = logging.FileHandler(log_file, encoding="utf-8", delay=True)
    file_handler.setFormatter(logging.Formatter(FILE_FORMAT))
    moved = _live_console_handlers()
    for logger in {id(lg): lg for lg, _ in moved}.values():
        if not verbose:
            for owner, handler in moved:
                if owner is logger:
                    logger.removeHandler(handler)
        logger.addHandler(file_handler)
    try:
        yield log_file
    finally:
        for logger in {id(lg): lg for lg, _ in moved}.values():
            logger.removeHandler(file_handler)
        for owner, handler in moved:
            if handler not in owner.handlers:
                owner.addHandler(handler)
        file_handler.close()
        settings.unlink(missing_ok=True)  # read by every process at its Prefect import, all in the block
        if previous is None:
            os.environ.pop(SETTINGS_VARIABLE, None)
        else:
            os.environ[SETTINGS_VARIABLE] = previous
