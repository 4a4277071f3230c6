"""Re-encode a dataset's videos for training: smaller, dense key frames, constant frame rate.

Decoding a sparse TSN clip from a video costs the frames from each sampled frame's key frame on:
with a key frame every 250 frames that is most of the video, with one every 12 to 16 a few frames
per sample (MMAction2 reports 1.42 s against 0.61 s per TSN iteration for plain against
dense-key-frame video). Every video under SRC becomes OUT/<its path with the extension .mp4>:
H.264 (libx264, no B-frames, --tune fastdecode: no CABAC and no deblocking filter), a key frame
every --gop frames, the short side --short_side, frames retimed to a constant --fps (default: the
source's average rate), audio left out. fastdecode made clips of the sample videos 27-43% cheaper
to decode for 13% larger files (docs/benchmarks.md).

Like tools/extract_frames.py it is parallel (-j) and resumable: a video is written to
`<name>.partial.mp4` and renamed when complete, so an existing output is a finished one and a
rerun skips it. A video that cannot be decoded, is cut off (ops.dataset.container_truncation) or
decodes fewer than --min_decoded of its declared frames gets no output; it is listed in the
report file with its error and the exit status is 1. With --measure N, the decode cost per clip
(TSN 8 sparse frames and 32 consecutive, --decoder) of the first N videos is measured before and
after and printed.

    python tools/prepare_videos.py data/kinetics/videos data/kinetics/videos_256 --short_side 256 --gop 16 -j 8
"""
import argparse
import os
import sys
import time
from fractions import Fraction

import av
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ops.dataset import READERS, BadSampleError, avi_reorders_frames, container_truncation  # noqa: E402
from ops.sampling import ClipSampler, TSNSampler  # noqa: E402
from opts import VIDEO_DECODERS  # noqa: E402
from tools.extract_frames import VIDEO_EXTS, find_videos, resized  # noqa: E402
from tools.parallel import convert_each, report_failures  # noqa: E402


def output_path(out, rel_video):
    return os.path.join(out, os.path.splitext(rel_video)[0] + ".mp4")


def even(size):
    return max(2, size - size % 2)


def prepare_video(video, target, short_side=256, gop=16, fps=None, crf=20, preset="fast", tune="fastdecode",
                  min_decoded=0.9):
    """Re-encode `video` into `target`; return (frames read, frames written). Raises on failure,
    leaving neither `target` nor its partial file behind."""
    problem = container_truncation(video)
    if problem:
        raise ValueError(problem)
    partial = os.path.splitext(target)[0] + ".partial.mp4"
    try:
        read = written = 0
        with av.open(video) as source:
            if not source.streams.video:
                raise ValueError("no video stream")
            stream = source.streams.video[0]
            declared = stream.frames
            source_rate = stream.average_rate or Fraction(25)
            rate = Fraction(fps).limit_denominator(1001) if fps else source_rate
            # AVI with B-frames: FFmpeg's guessed times are out of order; count frames instead
            timed = not avi_reorders_frames(video)
            with av.open(partial, mode="w", format="mp4") as sink:
                encoder = previous = start = None
                slack = float(1 / rate) / 4   # timestamps jitter by less than a quarter of a frame

                def put(picture):
                    nonlocal written
                    picture.pts, picture.time_base = written, 1 / rate
                    for packet in encoder.encode(picture):
                        sink.mux(packet)
                    written += 1

                for frame in source.decode(stream):
                    if encoder is None:
                        width, height = resized(frame.width, frame.height, short_side)
                        options = {"crf": str(crf), "preset": preset, "bf": "0"}
                        if tune != "none":
                            options["tune"] = tune
                        encoder = sink.add_stream("libx264", rate=rate, options=options)
                        encoder.width, encoder.height, encoder.pix_fmt = even(width), even(height), "yuv420p"
                        encoder.gop_size = gop
                    # constant frame rate: output slot j shows the frame on screen at time j / rate
                    # (from the first frame), so frames are repeated or dropped by time
                    t = frame.time if timed and frame.time is not None else float(read / source_rate)
                    start = t if start is None else start
                    read += 1
                    while previous is not None and float(written / rate) < t - start - slack:
                        put(previous)
                    previous = frame.reformat(width=encoder.width, height=encoder.height, format="yuv420p",
                                              interpolation="AREA")
                if encoder is None:
                    raise ValueError("decoded zero frames")
                while float(written / rate) < t - start + float(1 / source_rate) - slack:
                    put(previous)
                for packet in encoder.encode():
                    sink.mux(packet)
        if read < min_decoded * declared:
            raise ValueError(f"decoded {read} of the {declared} frames the container declares (truncated?)")
        os.replace(partial, target)
        return read, written
    except BaseException:
        if os.path.exists(partial):
            os.remove(partial)
        raise


def _encoded(target, options):
    return os.path.isfile(target)


def prepare_all(src, out, workers=1, exts=VIDEO_EXTS, progress=True, **options):
    """Re-encode every video under src; {"done", "skipped", "failed": [(rel, error)], "total"}.
    Two videos that would share an output (a.avi, a.mp4) both fail."""
    return convert_each(src, find_videos(src, exts), out, output_path, prepare_video, _encoded, options,
                        "prepare", workers, progress)


def decode_cost(paths, decoder, clips=4, seed=0):
    """{sampler name: CPU ms per clip} of reading clips from each video with `decoder`."""
    reader = READERS[decoder]()
    samplers = {"TSN 8": TSNSampler(8, mode="train"), "32 consecutive": ClipSampler(32, 1, mode="train")}
    rng = np.random.default_rng(seed)
    cost = {}
    for name, sampler in samplers.items():
        start, count = time.process_time(), 0
        for path in paths:
            total = reader.num_frames(path)
            for _ in range(clips):
                reader.read(path, sampler(total, rng).reshape(-1))
                count += 1
        cost[name] = 1000 * (time.process_time() - start) / max(1, count)
    return cost


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="folder of videos (searched recursively)")
    p.add_argument("out", help="folder for the re-encoded videos (the source tree is mirrored, as .mp4)")
    p.add_argument("--short_side", type=int, default=256, help="short side in pixels (0: keep)")
    p.add_argument("--gop", type=int, default=16, help="a key frame every this many frames")
    p.add_argument("--fps", type=float, default=None, help="constant output frame rate (default: the source's)")
    p.add_argument("--crf", type=int, default=20, help="x264 constant rate factor (lower: better, larger)")
    p.add_argument("--preset", default="fast", help="x264 preset")
    p.add_argument("--tune", default="fastdecode", help="x264 tune ('film,fastdecode' combines; 'none': "
                   "CABAC and deblocking back on, smaller files that decode slower)")
    p.add_argument("--ext", nargs="+", default=list(VIDEO_EXTS), help="video file extensions")
    p.add_argument("--min_decoded", type=float, default=0.9,
                   help="fail a video that decodes fewer than this fraction of its declared frames")
    p.add_argument("--report", default=None, help="failed videos with errors (default: OUT/prepare_failures.txt)")
    p.add_argument("--measure", type=int, default=0, help="measure the decode cost of the first N videos, "
                   "before and after")
    p.add_argument("--decoder", default="pyav", choices=VIDEO_DECODERS, help="decoder for --measure")
    p.add_argument("-j", "--workers", type=int, default=1, help="worker processes")
    args = p.parse_args(argv)
    if not os.path.isdir(args.src):
        p.error(f"no such folder: {args.src}")
    if args.gop < 1:
        p.error("--gop must be >= 1")

    result = prepare_all(args.src, args.out, args.workers, args.ext, short_side=args.short_side, gop=args.gop,
                         fps=args.fps, crf=args.crf, preset=args.preset, tune=args.tune,
                         min_decoded=args.min_decoded)
    report = args.report or os.path.join(args.out, "prepare_failures.txt")
    print(f"{result['total']} videos: {result['done']} re-encoded, {result['skipped']} already done, "
          f"{len(result['failed'])} failed")
    if args.measure:
        failed = {rel for rel, _ in result["failed"]}
        rels = [rel for rel in find_videos(args.src, args.ext) if rel not in failed][:args.measure]
        try:
            before = decode_cost([os.path.join(args.src, rel) for rel in rels], args.decoder)
            after = decode_cost([output_path(args.out, rel) for rel in rels], args.decoder)
        except BadSampleError as e:
            print(f"cannot measure: {e}", file=sys.stderr)
        else:
            for name in before:
                print(f"decode cost ({args.decoder}, {name}, {len(rels)} videos): {before[name]:.1f} ms per clip "
                      f"before, {after[name]:.1f} after ({after[name] / before[name]:.2f}x)")
    return report_failures(result["failed"], report)


if __name__ == "__main__":
    sys.exit(main())
