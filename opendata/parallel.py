"""Where the independent pieces of a release run: here, a local process pool, or a Dask cluster.

The measures of a release are protected independently of each other (``opendata.protection``),
each by a deterministic computation, so the package is the same bytes whoever runs them and in
whatever order they finish: results are collected in the order the tasks were given. A process
pool (``spawn``: no forked solver or DuckDB threads) uses every core by default; small releases
stay in this process, where starting workers would cost more than it saves. ``scheduler`` names a
Dask distributed scheduler (``tcp://host:8786``): the same tasks then run on its workers, which
need this package installed (``pip install 'opendata[cluster]'``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, TypeVar

from opendata.errors import ReleaseError

T = TypeVar("T")
POOL_MIN_CELLS = 20_000  # below this many grid cells (table rows, each counted once whatever its measures), in-process
PARENT_POLL_SECONDS = 0.5  # how often a pool worker looks whether the release that started it is still there


def _follow_parent(parent: int) -> None:
    """A pool worker's initializer: end the worker as soon as the release that started it is gone.

    A release killed with SIGTERM (or SIGKILL) runs no cleanup, and its workers would otherwise run
    their task to the end at full CPU, writing nothing anyone reads. Their results are only ever
    read by that parent, so ending them loses nothing; polling ``getppid`` works on every POSIX
    system (Linux's ``PR_SET_PDEATHSIG`` would not on macOS)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="follow-parent", daemon=True).start()


def connect(scheduler: str) -> Any:
    """A client of the Dask scheduler at ``scheduler``, or ReleaseError saying why not. A release
    calls it first too (and closes it), so a wrong address is reported before any work."""
    try:
        from distributed import Client
    except ImportError:
        raise ReleaseError("--scheduler needs Dask distributed: pip install 'opendata[cluster]'") from None
    try:
        return Client(scheduler, timeout="30s")
    except (OSError, ValueError, TimeoutError) as exc:
        raise ReleaseError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None


def run_all(
    task: Callable[..., T],
    arguments: Sequence[tuple[Any, ...]],
    workers: int | None = None,
    scheduler: str | None = None,
    cells: int | None = None,
) -> list[T]:
    """``[task(*a) for a in arguments]``, run in parallel; an exception in a task is raised here.

    ``workers``: processes of the local pool (default: every core; 1 runs in this process);
    ``cells``: the size of the work (table rows), to keep small releases in this process."""
    if scheduler:
        with connect(scheduler) as client:
            futures = [client.submit(task, *a, pure=False) for a in arguments]
            return [f.result() for f in futures]
    n = min(workers or os.cpu_count() or 1, len(arguments))
    if n <= 1 or (workers is None and cells is not None and cells < POOL_MIN_CELLS):
        return [task(*a) for a in arguments]
    spawn = get_context("spawn")
    with ProcessPoolExecutor(n, mp_context=spawn, initializer=_follow_parent, initargs=(os.getpid(),)) as pool:
        futures = [pool.submit(task, *a) for a in arguments]
        return [f.result() for f in futures]
