"""A worker pool with a progress bar, shared by the tools that process many videos at once."""
import os
import sys
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


def _convert_one(task):
    """(rel, error or None, skipped) of one video of convert_each."""
    convert, is_done, video, target, rel, options = task
    if is_done(target, options):
        return rel, None, True
    os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
    try:
        convert(video, target, **options)
        return rel, None, False
    except Exception as e:  # the error is the report's content; every video gets its try
        return rel, f"{type(e).__name__}: {e}".replace("\n", " "), False


def convert_each(src, videos, out, target_of, convert, is_done, options, desc, workers=1, progress=True):
    """convert(src/rel, target_of(out, rel), **options) for every relative path in `videos`, resumable
    (a target for which is_done(target, options) is skipped) and parallel; {"done", "skipped", "failed": [(rel, error)],
    "total"}. Videos that would share a target (a.avi, a.mp4) all fail: neither is silently taken
    for the other. convert and is_done must be module-level functions (they cross processes)."""
    by_target = {}
    for rel in videos:
        by_target.setdefault(target_of(out, rel), []).append(rel)
    result = {"done": 0, "skipped": 0, "failed": []}
    for same in by_target.values():
        if len(same) > 1:
            result["failed"] += [(rel, f"shares its output with {', '.join(r for r in same if r != rel)}")
                                 for rel in same]
    clash = {rel for rel, _ in result["failed"]}
    tasks = [(convert, is_done, os.path.join(src, rel), target_of(out, rel), rel, options)
             for rel in videos if rel not in clash]
    os.makedirs(out, exist_ok=True)
    for rel, error, skipped in run_parallel(_convert_one, tasks, workers, desc, progress=progress):
        if error is not None:
            result["failed"].append((rel, error))
        else:
            result["skipped" if skipped else "done"] += 1
    result["failed"].sort()
    result["total"] = len(videos)
    return result


def report_failures(failed, report):
    """A batch's exit status: 1 with every (rel, error) written to `report` and the first ten on
    stderr; 0 with a stale report from an earlier run removed (it no longer applies)."""
    if failed:
        with open(report, "w", encoding="utf-8") as f:
            f.writelines(f"{rel}\t{error}\n" for rel, error in failed)
        for rel, error in failed[:10]:
            print(f"FAILED {rel}: {error}", file=sys.stderr)
        print(f"all {len(failed)} failures are listed in {report}", file=sys.stderr)
        return 1
    if os.path.exists(report):
        os.remove(report)
    return 0
