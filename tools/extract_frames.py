"""Decode videos into JPEG frame folders: parallel, resumable, and loud about failures.

Every video under SRC (recursively, by extension) becomes the folder OUT/<its path without the
extension>, holding frames tmpl.format(1), tmpl.format(2), ... The frames are written to
`<folder>.partial` and the folder is renamed into place only once every frame is written, so an
existing folder is a finished one: a rerun skips it and redoes anything interrupted. A video that
cannot be decoded, yields no frame, or stops well short of the frame count its container declares
(a cut-off download) never gets a folder; it is listed with its error in the report file and the
exit status is 1. Decoding uses PyAV; no ffmpeg binary is needed.

    python tools/extract_frames.py data/ucf101/videos data/ucf101/rawframes --short_side 256 -j 8
"""
import argparse
import os
import shutil
import sys

import av
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tools.parallel import convert_each, report_failures  # noqa: E402

VIDEO_EXTS = ("mp4", "avi", "webm", "mkv", "mov", "m4v", "mpg", "mpeg", "flv")


def find_videos(src, exts=VIDEO_EXTS):
    """Paths of the videos under src relative to it, sorted; extensions compared without case."""
    exts = {"." + e.lower().lstrip(".") for e in exts}
    found = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        for name in filenames:
            if os.path.splitext(name)[1].lower() in exts:
                found.append(os.path.relpath(os.path.join(dirpath, name), src))
    return sorted(found)


def frame_folder(out, rel_video):
    """The frame folder of a video: OUT/<relative path without its extension>."""
    return os.path.join(out, os.path.splitext(rel_video)[0])


def is_done(folder, tmpl):
    """A folder counts as done when it exists with its first frame (folders appear complete)."""
    return os.path.isfile(os.path.join(folder, tmpl.format(1)))


def resized(width, height, short_side):
    """(width, height) scaled so the short side is `short_side` (0 or None: unchanged)."""
    if not short_side or min(width, height) == short_side:
        return width, height
    scale = short_side / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def extract_video(video, folder, tmpl="img_{:05d}.jpg", short_side=None, quality=90, min_decoded=0.9):
    """Decode `video` into `folder`; return the number of frames. Raises on failure, leaving
    neither `folder` nor its `.partial` behind. A video that yields fewer than `min_decoded` of
    the frames its container declares is a failure: decoders stop quietly at a cut-off end."""
    tmp = folder + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        count = 0
        with av.open(video) as container:
            if not container.streams.video:
                raise ValueError("no video stream")
            declared = container.streams.video[0].frames
            for frame in container.decode(video=0):
                img = frame.to_image()
                size = resized(img.width, img.height, short_side)
                if size != img.size:
                    img = img.resize(size, Image.BILINEAR)
                count += 1
                img.save(os.path.join(tmp, tmpl.format(count)), quality=quality)
        if count == 0:
            raise ValueError("decoded zero frames")
        if count < min_decoded * declared:
            raise ValueError(f"decoded {count} of the {declared} frames the container declares (truncated?)")
        if os.path.isdir(folder):  # an empty or unfinished folder left by something else
            shutil.rmtree(folder)
        os.rename(tmp, folder)
        return count
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _folder_done(folder, options):
    return is_done(folder, options["tmpl"])


def extract_all(src, out, tmpl="img_{:05d}.jpg", short_side=None, quality=90, workers=1,
                exts=VIDEO_EXTS, min_decoded=0.9, progress=True):
    """Extract every video under src; return {"done": n, "skipped": n, "failed": [(rel, error)],
    "total": n}. Videos that would share a frame folder (a.avi, a.mp4) all fail: neither is
    silently taken for the other."""
    try:
        tmpl.format(1)
    except (IndexError, KeyError, ValueError) as e:
        raise ValueError(f"template '{tmpl}' does not format a frame number: {e}") from None
    options = dict(tmpl=tmpl, short_side=short_side, quality=quality, min_decoded=min_decoded)
    return convert_each(src, find_videos(src, exts), out, frame_folder, extract_video, _folder_done, options,
                        "extract", workers, progress)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="folder of videos (searched recursively)")
    p.add_argument("out", help="folder for the frame folders (the source tree is mirrored)")
    p.add_argument("--tmpl", default="img_{:05d}.jpg",
                   help="frame file name template, 1-based (default: %(default)s; Something-Something V2: {:06d}.jpg)")
    p.add_argument("--short_side", type=int, default=0, help="resize so the short side is this (default 0: keep)")
    p.add_argument("--quality", type=int, default=90, help="JPEG quality (default: %(default)s)")
    p.add_argument("--ext", nargs="+", default=list(VIDEO_EXTS), help="video file extensions (default: common ones)")
    p.add_argument("--min_decoded", type=float, default=0.9,
                   help="fail a video that decodes fewer than this fraction of the frames its container "
                        "declares (a cut-off file); 0 disables the check (default: %(default)s)")
    p.add_argument("--report", default=None,
                   help="file listing failed videos with their errors (default: OUT/extract_failures.txt)")
    p.add_argument("-j", "--workers", type=int, default=1, help="worker processes (default: %(default)s)")
    args = p.parse_args(argv)
    if not os.path.isdir(args.src):
        p.error(f"no such folder: {args.src}")

    result = extract_all(args.src, args.out, args.tmpl, args.short_side, args.quality,
                         args.workers, args.ext, args.min_decoded)
    report = args.report or os.path.join(args.out, "extract_failures.txt")
    print(f"{result['total']} videos: {result['done']} extracted, {result['skipped']} already done, "
          f"{len(result['failed'])} failed")
    return report_failures(result["failed"], report)


if __name__ == "__main__":
    sys.exit(main())
