"""Per-clip work on this machine (joblib) or on a Dask cluster, behind one function.

:func:`imap_unordered` runs ``func(*args)`` for every tuple of ``tasks`` and yields
``(args, result)`` as they finish:

- ``cluster=None``: joblib's loky processes on this machine (``n_jobs`` of them);
- ``cluster="local:N"``: a ``dask.distributed.LocalCluster`` of ``N`` single-threaded worker
  processes, started for the call and closed after it;
- ``cluster="tcp://host:8786"`` (any scheduler address): an existing Dask cluster;
- ``cluster=<distributed.Client>``: a client the caller holds (the tests use this to kill a
  worker mid-run).

On Dask, a task whose worker dies is re-run on another worker (the scheduler's
``allowed-failures``, 3 by default); a task that fails every time, or raises, is passed to
``on_error(args, exception)``, whose return value is yielded as its result, so one clip never
stops the others. The stages' tasks write their outputs atomically (a temporary file, then a
rename), so a task killed half-way leaves nothing half-written and its re-run writes the same
files.

What a cluster needs: every worker runs the same environment (``pip install --require-hashes
-r requirements.lock`` and ``pip install --no-deps -e .`` from the same commit), sees the data
folder at the same path (a shared filesystem; set ``WAV2KP_HOME`` on the workers as on the
client), and, for ``tcp://`` addresses, can be reached from the client. See
``docs/scaling.md``.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

__all__ = ["cluster_client", "describe", "imap_unordered", "parse_cluster"]

# loky says this when it replaces a worker process (its memory-leak guard, an idle timeout);
# the jobs are re-run and the results are unaffected, so it is noise on the study's pages
warnings.filterwarnings(
    "ignore", message="A worker stopped while some jobs were given", category=UserWarning
)


def parse_cluster(spec: str | None) -> tuple[str, Any] | None:
    """``None`` -> ``None``; ``"local:N"`` -> ``("local", N)``; ``"tcp://..."`` (or any
    ``scheme://``) -> ``("address", spec)``. Anything else is a clear ``ValueError``."""
    if spec is None or spec == "":
        return None
    if not isinstance(spec, str):
        return ("client", spec)
    if spec.startswith("local:"):
        n = spec.split(":", 1)[1]
        if not n.isdigit() or int(n) < 1:
            raise ValueError(
                f"cluster={spec!r}: 'local:N' needs a whole number of workers N >= 1 "
                f"(e.g. local:2)."
            )
        return ("local", int(n))
    if "://" in spec:
        return ("address", spec)
    raise ValueError(
        f"cluster={spec!r}: use 'local:N' (a LocalCluster of N worker processes) or a Dask "
        f"scheduler address such as 'tcp://host:8786'."
    )


@contextlib.contextmanager
def cluster_client(spec):
    """A ``distributed.Client`` for ``spec`` (see :func:`parse_cluster`), closed afterwards
    (a client passed in is left open)."""
    kind, value = parse_cluster(spec) or (None, None)
    if kind is None:
        raise ValueError("cluster_client needs a cluster (local:N or an address).")
    if kind == "client":
        yield value
        return
    from distributed import Client, LocalCluster

    if kind == "local":
        # one thread per worker: dlib, torch and FFmpeg use their own threads; workers inherit
        # this process's environment (WAV2KP_HOME, MPLBACKEND)
        with (
            LocalCluster(
                n_workers=value,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=40,
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client
    else:
        with Client(value) as client:
            yield client


def describe(spec) -> str:
    """A short name for logs: ``joblib``, ``dask local:2``, ``dask tcp://...``."""
    parsed = parse_cluster(spec)
    if parsed is None:
        return "joblib"
    kind, value = parsed
    if kind == "client":
        return f"dask {getattr(value, 'scheduler', None) and value.scheduler.address}"
    return f"dask local:{value}" if kind == "local" else f"dask {value}"


def imap_unordered(
    func: Callable[..., Any],
    tasks: Sequence[tuple],
    n_jobs: int = -1,
    cluster=None,
    on_error: Callable[[tuple, BaseException], Any] | None = None,
    retries: int = 1,
    batch: int = 1,
) -> Iterator[tuple[tuple, Any]]:
    """``(args, func(*args))`` for every ``args`` of ``tasks``, in the order they finish (see
    the module docstring). ``retries``: extra tries of a task that *raised* on Dask (a worker
    that died is retried by the scheduler on its own). ``batch``: on Dask, run that many tasks
    one after the other in one Dask task (fewer futures for the scheduler when there are very
    many small tasks; a lost worker re-runs its whole batch)."""
    tasks = list(tasks)
    if not tasks:
        return
    if parse_cluster(cluster) is None:
        yield from _joblib(func, tasks, n_jobs)
        return
    if int(batch) < 1:
        raise ValueError(f"batch must be >= 1, got {batch!r}.")
    yield from _dask(func, tasks, cluster, on_error, retries, int(batch))


def _joblib(func, tasks, n_jobs) -> Iterable[tuple[tuple, Any]]:
    from joblib import Parallel, delayed

    def tagged(i, *args):
        return i, func(*args)

    jobs = Parallel(n_jobs=n_jobs if len(tasks) > 1 else 1, return_as="generator_unordered")
    for i, result in jobs(delayed(tagged)(i, *args) for i, args in enumerate(tasks)):
        yield tasks[i], result


class _Failed:
    """What :func:`_run_batch` returns for a task of a batch that raised."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _run_batch(func, batch: list[tuple]) -> list:
    out = []
    for args in batch:
        try:
            out.append(func(*args))
        except Exception as err:  # noqa: BLE001 - reported per task by the client
            out.append(_Failed(err))
    return out


def _dask(func, tasks, cluster, on_error, retries, batch=1) -> Iterable[tuple[tuple, Any]]:
    from distributed import as_completed

    def failed(args, err):
        if on_error is None:
            raise err
        return on_error(args, err)

    with cluster_client(cluster) as client:
        futures = {}
        if batch == 1:
            for args in tasks:
                futures[client.submit(func, *args, pure=False, retries=retries)] = [args]
        else:
            for i in range(0, len(tasks), batch):
                group = tasks[i : i + batch]
                futures[client.submit(_run_batch, func, group, pure=False, retries=retries)] = group
        for fut in as_completed(futures):
            group = futures[fut]
            try:
                results = [fut.result()] if batch == 1 else fut.result()
            except Exception as err:  # noqa: BLE001 - a task that failed on every try
                results = [_Failed(err)] * len(group)
            for args, result in zip(group, results):
                yield args, (failed(args, result.error) if isinstance(result, _Failed) else result)
            fut.release()
