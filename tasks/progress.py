"""A progress bar per stage on a terminal; periodic log lines otherwise."""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections.abc import Callable, Iterator

from rich.errors import LiveError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

LOG_EVERY_FRACTION = 0.25


def progress_wanted(setting: bool | None) -> bool:
    """Show bars when configured to, or by default when stderr is an interactive terminal."""
    return setting if setting is not None else sys.stderr.isatty()


@contextlib.contextmanager
def stage_progress(
    label: str, total: int, enabled: bool, logger: logging.Logger | logging.LoggerAdapter
) -> Iterator[Callable[[], None]]:
    """Yield a thread-safe 'advance by one' callable that drives a bar or logs milestones."""
    if enabled and total > 0:
        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        try:
            progress.start()
        except LiveError:  # another stage's bar is showing: log instead
            enabled = False
        else:
            bar = progress.add_task(label, total=total)
            try:
                yield lambda: progress.advance(bar)
            finally:
                progress.stop()
            return
    yield logging_advance(label, total, logger)


def logging_advance(label: str, total: int, logger: logging.Logger | logging.LoggerAdapter) -> Callable[[], None]:
    """An advance callable that logs at every quarter of the way."""
    lock = threading.Lock()
    done = [0]
    step = max(1, int(total * LOG_EVERY_FRACTION))

    def advance() -> None:
        with lock:
            done[0] += 1
            if done[0] % step == 0 or done[0] == total:
                logger.info("%s: %d/%d", label, done[0], total)

    return advance
