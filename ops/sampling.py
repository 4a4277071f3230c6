"""Which frames of a video make a training or test input.

Every sampler maps (num_frames N, rng) to int64 indices [C, T]: C clips of T frame indices,
0-based. The only randomness is the numpy Generator passed in, so the indices are a pure function
of (seed, epoch, video index) in VideoDataset and tests can check them exactly. The rules are
those of the TSN / TSM line (sparse), I3D (dense) and 3D CNNs (clips); each class states its own.
"""
import numpy as np

MODES = ("train", "val", "test")


def _check_mode(mode):
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got '{mode}'")


def _check_num_frames(num_frames):
    if num_frames < 1:
        raise ValueError(f"a video needs at least one frame, got num_frames={num_frames}")


def _spread(num_positions, num_clips):
    """Deterministic starts for C clips over P positions: clip c at offset (c + 0.5) / C."""
    c = np.arange(num_clips)
    return (num_positions * (2 * c + 1)) // (2 * num_clips)


class TSNSampler:
    """TSN sparse sampling: K segments, L consecutive frames from each (T = K * L).

    The N - L + 1 valid starts (at least 1) are split into K segments [floor(k M / K),
    floor((k + 1) M / K)).
    - train: a random start in each segment; when a segment is empty but N > K (L > 1 leaves
      fewer than K valid starts), K sorted random starts; when N <= K, the starts floor(k M / K),
      which repeats frames in order.
    - val / test: clip c takes offset (c + 0.5) / C of every segment, so one clip is the
      segments' centres; deterministic.
    - twice_sample (test only, TSM's protocol): 2 clips, the segments' centres and their starts.
    Frames past the end (N < L) repeat the last frame.
    """

    def __init__(self, num_segments, new_length=1, mode="train", num_clips=1, twice_sample=False):
        _check_mode(mode)
        if num_segments < 1 or new_length < 1 or num_clips < 1:
            raise ValueError("num_segments, new_length and num_clips must be >= 1")
        if twice_sample and (mode != "test" or num_clips != 1):
            raise ValueError("twice_sample is a test protocol that makes its own 2 clips "
                             "(centres + starts): use mode='test' and num_clips=1")
        self.num_segments, self.new_length, self.mode = num_segments, new_length, mode
        self.num_clips, self.twice_sample = num_clips, twice_sample

    def __repr__(self):
        return (f"TSNSampler(num_segments={self.num_segments}, new_length={self.new_length}, "
                f"mode='{self.mode}', num_clips={self.num_clips}, twice_sample={self.twice_sample})")

    def _train_starts(self, num_frames, rng):
        k_segs = self.num_segments
        valid = max(num_frames - self.new_length + 1, 1)
        edges = (np.arange(k_segs + 1) * valid) // k_segs
        if valid >= k_segs:
            return rng.integers(edges[:-1], edges[1:])
        if num_frames > k_segs:
            return np.sort(rng.integers(0, valid, size=k_segs))
        return edges[:-1]

    def __call__(self, num_frames, rng):
        _check_num_frames(num_frames)
        k_segs = self.num_segments
        valid = max(num_frames - self.new_length + 1, 1)
        if self.mode == "train":
            starts = np.stack([self._train_starts(num_frames, rng) for _ in range(self.num_clips)])
        elif self.twice_sample:
            k = np.arange(k_segs)
            starts = np.stack([(valid * (2 * k + 1)) // (2 * k_segs), (valid * k) // k_segs])
        else:
            # segment k, clip c: floor(M * (k + (c + 0.5) / C) / K), in integers
            k, c = np.arange(k_segs)[None, :], np.arange(self.num_clips)[:, None]
            starts = (valid * (2 * k * self.num_clips + 2 * c + 1)) // (2 * k_segs * self.num_clips)
        indices = starts[:, :, None] + np.arange(self.new_length)[None, None, :]
        return np.minimum(indices, num_frames - 1).reshape(len(starts), -1).astype(np.int64)


class DenseSampler:
    """I3D-style dense sampling: K positions spaced window // K apart inside a window of
    `window` frames, L consecutive frames at each (T = K * L); indices past the end wrap around
    (mod N), as in TSM's dense mode.
    - train: the window starts at a random one of the max(N - window + 1, 1) valid starts.
    - val / test: C windows at offsets (c + 0.5) / C of the valid starts (one = centred).
    """

    def __init__(self, num_segments, new_length=1, window=64, mode="train", num_clips=1):
        _check_mode(mode)
        if num_segments < 1 or new_length < 1 or num_clips < 1:
            raise ValueError("num_segments, new_length and num_clips must be >= 1")
        if window < num_segments:
            raise ValueError(f"window ({window}) must hold num_segments ({num_segments}) positions")
        self.num_segments, self.new_length, self.window = num_segments, new_length, window
        self.mode, self.num_clips = mode, num_clips
        self.stride = window // num_segments

    def __repr__(self):
        return (f"DenseSampler(num_segments={self.num_segments}, new_length={self.new_length}, "
                f"window={self.window}, stride={self.stride}, mode='{self.mode}', num_clips={self.num_clips})")

    def __call__(self, num_frames, rng):
        _check_num_frames(num_frames)
        valid = max(num_frames - self.window + 1, 1)
        if self.mode == "train":
            starts = rng.integers(0, valid, size=self.num_clips)
        else:
            starts = _spread(valid, self.num_clips)
        offsets = (np.arange(self.num_segments)[:, None] * self.stride
                   + np.arange(self.new_length)[None, :]).reshape(-1)
        return ((starts[:, None] + offsets[None, :]) % num_frames).astype(np.int64)


class ClipSampler:
    """3D-CNN clips: clip_len frames at `stride` (a span of (clip_len - 1) * stride + 1 frames).
    - train: a random start among the N - span + 1 valid starts.
    - val / test: C clips at offsets (c + 0.5) / C of the valid starts (one clip = centred).
    A video shorter than the span starts at 0 and, with short='loop', wraps around (index mod N);
    with short='repeat_last', repeats its last frame.
    """

    def __init__(self, clip_len, stride=1, mode="train", num_clips=1, short="loop"):
        _check_mode(mode)
        if clip_len < 1 or stride < 1 or num_clips < 1:
            raise ValueError("clip_len, stride and num_clips must be >= 1")
        if short not in ("loop", "repeat_last"):
            raise ValueError(f"short must be 'loop' or 'repeat_last', got '{short}'")
        self.clip_len, self.stride, self.mode = clip_len, stride, mode
        self.num_clips, self.short = num_clips, short
        self.span = (clip_len - 1) * stride + 1

    def __repr__(self):
        return (f"ClipSampler(clip_len={self.clip_len}, stride={self.stride}, mode='{self.mode}', "
                f"num_clips={self.num_clips}, short='{self.short}')")

    def __call__(self, num_frames, rng):
        _check_num_frames(num_frames)
        valid = num_frames - self.span + 1
        if valid < 1:
            starts = np.zeros(self.num_clips, np.int64)
        elif self.mode == "train":
            starts = rng.integers(0, valid, size=self.num_clips)
        else:
            starts = _spread(valid, self.num_clips)
        indices = starts[:, None] + np.arange(self.clip_len)[None, :] * self.stride
        if self.short == "loop":
            indices = indices % num_frames
        else:
            indices = np.minimum(indices, num_frames - 1)
        return indices.astype(np.int64)


class ChunkSampler:
    """The STTS project's clips: T frames spread over the whole video, one per chunk (its published
    code; not T consecutive frames).
    - N >= T: the N frames are split into T chunks [floor(t N / T), floor((t + 1) N / T));
      train takes a random frame of each chunk, val / test clip c the frame at offset (c + 0.5) / C
      of every chunk (one clip = the chunks' middles); deterministic.
    - N < T: the video is played forwards and backwards (ping-pong: 0 .. N-1, N-2 .. 0, 1 ..)
      until it is T frames long; every clip is the same.
    """

    def __init__(self, clip_len, mode="train", num_clips=1):
        _check_mode(mode)
        if clip_len < 1 or num_clips < 1:
            raise ValueError("clip_len and num_clips must be >= 1")
        self.clip_len, self.mode, self.num_clips = clip_len, mode, num_clips

    def __repr__(self):
        return f"ChunkSampler(clip_len={self.clip_len}, mode='{self.mode}', num_clips={self.num_clips})"

    def __call__(self, num_frames, rng):
        _check_num_frames(num_frames)
        t_len, n = self.clip_len, num_frames
        if n < t_len:
            period = max(2 * n - 2, 1)
            phase = np.arange(t_len) % period
            row = np.where(phase < n, phase, period - phase)
            return np.tile(row, (self.num_clips, 1)).astype(np.int64)
        t = np.arange(t_len)
        edges = (np.arange(t_len + 1) * n) // t_len
        if self.mode == "train":
            return np.stack([rng.integers(edges[:-1], edges[1:]) for _ in range(self.num_clips)]).astype(np.int64)
        c = np.arange(self.num_clips)[:, None]
        return ((n * (2 * t[None, :] * self.num_clips + 2 * c + 1)) // (2 * t_len * self.num_clips)).astype(np.int64)


class TimeReversed:
    """Another sampler's frames in reverse order within every clip: [C, T] -> [C, T] with each
    row flipped. The views hold exactly the frames they would hold, played backwards, so a model
    that ignores frame order scores them identically; the score change measures reliance on the
    arrow of time (test_models.py --reverse_time)."""

    def __init__(self, sampler):
        self.sampler = sampler

    def __repr__(self):
        return f"TimeReversed({self.sampler!r})"

    def __call__(self, num_frames, rng):
        return np.ascontiguousarray(self.sampler(num_frames, rng)[:, ::-1])
