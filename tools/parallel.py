"""A worker pool with a progress bar, shared by the tools that process many videos at once."""
from multiprocessing import Pool

from tqdm import tqdm


def run_parallel(fn, tasks, workers=1, desc=None, unit="video", progress=True, chunksize=1):
    """Yield fn(task) for every task in completion order, over `workers` processes (in this process
    when workers <= 1, which keeps tracebacks simple), advancing a tqdm bar; the pool is closed
    even when the caller stops early or an error is raised."""
    bar = tqdm(total=len(tasks), desc=desc, unit=unit, disable=not progress)
    pool = Pool(workers) if workers > 1 else None
    try:
        for result in (pool.imap_unordered(fn, tasks, chunksize=chunksize) if pool else map(fn, tasks)):
            yield result
            bar.update()
    finally:
        bar.close()
        if pool:
            pool.close()
            pool.join()
