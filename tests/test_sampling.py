import numpy as np
import pytest

from ops.sampling import ClipSampler, DenseSampler, TimeReversed, TSNSampler


def rng(seed=0):
    return np.random.default_rng(seed)


# ---- TSN sparse sampling ------------------------------------------------------------------------

@pytest.mark.parametrize("num_frames", [8, 9, 20, 37, 300])
def test_tsn_train_one_frame_per_segment(num_frames):
    k = 8
    for seed in range(20):
        idx = TSNSampler(k)(num_frames, rng(seed))
        assert idx.shape == (1, k) and idx.dtype == np.int64
        edges = (np.arange(k + 1) * num_frames) // k
        assert np.all(idx[0] >= edges[:-1]) and np.all(idx[0] < edges[1:])


def test_tsn_train_covers_whole_segments():
    seen = np.zeros(12, bool)
    for seed in range(200):
        seen[TSNSampler(3)(12, rng(seed))[0]] = True
    assert seen.all()  # every frame of every segment can be drawn, the last frames included


def test_tsn_train_new_length_consecutive_frames():
    k, length, n = 4, 3, 20
    for seed in range(20):
        idx = TSNSampler(k, length)(n, rng(seed)).reshape(k, length)
        assert np.all(np.diff(idx, axis=1) == 1)
        valid = n - length + 1
        edges = (np.arange(k + 1) * valid) // k
        assert np.all(idx[:, 0] >= edges[:-1]) and np.all(idx[:, 0] < edges[1:])
        assert idx.max() <= n - 1


def test_tsn_train_empty_segments_sorted_random_starts():
    # N = 6 > K = 4 but only N - L + 1 = 2 valid starts: K sorted random starts among them
    draws = set()
    for seed in range(30):
        idx = TSNSampler(4, 5)(6, rng(seed)).reshape(4, 5)
        starts = idx[:, 0]
        assert np.all(np.diff(starts) >= 0) and set(starts) <= {0, 1}
        assert np.all(idx == starts[:, None] + np.arange(5))
        draws.add(tuple(starts))
    assert len(draws) > 1


def test_tsn_video_shorter_than_k_repeats_in_order():
    for mode in ("train", "val", "test"):
        idx = TSNSampler(8, mode=mode)(3, rng())
        assert idx[0].tolist() in ([0, 0, 0, 1, 1, 1, 2, 2], [0, 0, 0, 1, 1, 2, 2, 2])
    assert TSNSampler(8)(3, rng()).tolist() == [[0, 0, 0, 1, 1, 1, 2, 2]]
    assert TSNSampler(8, mode="val")(1, rng()).tolist() == [[0] * 8]


def test_tsn_shorter_than_new_length_repeats_last_frame():
    assert TSNSampler(2, 4, mode="val")(3, rng()).tolist() == [[0, 1, 2, 2, 0, 1, 2, 2]]


def test_tsn_val_centres():
    assert TSNSampler(4, mode="val")(40, rng()).tolist() == [[5, 15, 25, 35]]
    assert TSNSampler(3, 2, mode="val")(31, rng()).tolist() == [[5, 6, 15, 16, 25, 26]]
    assert TSNSampler(1, mode="val")(10, rng()).tolist() == [[5]]


def test_tsn_k1_train_any_frame():
    draws = {int(TSNSampler(1)(5, rng(s))[0, 0]) for s in range(100)}
    assert draws == {0, 1, 2, 3, 4}


def test_tsn_test_multi_clip_offsets():
    # segments of 12 frames; clip c at offset (c + 0.5) / 3 of each: 2, 6, 10
    idx = TSNSampler(2, mode="test", num_clips=3)(24, rng())
    assert idx.tolist() == [[2, 14], [6, 18], [10, 22]]
    # one test clip is the val centre
    assert np.array_equal(TSNSampler(5, mode="test")(77, rng()), TSNSampler(5, mode="val")(77, rng()))


def test_tsn_twice_sample_centres_then_starts():
    idx = TSNSampler(4, mode="test", twice_sample=True)(40, rng())
    assert idx.tolist() == [[5, 15, 25, 35], [0, 10, 20, 30]]


def test_tsn_twice_sample_only_in_test():
    with pytest.raises(ValueError, match="twice_sample"):
        TSNSampler(4, mode="train", twice_sample=True)
    with pytest.raises(ValueError, match="twice_sample"):
        TSNSampler(4, mode="test", num_clips=3, twice_sample=True)


def test_tsn_train_multi_clip_independent_draws():
    idx = TSNSampler(4, mode="train", num_clips=5)(100, rng(3))
    assert idx.shape == (5, 4)
    assert len({tuple(row) for row in idx}) > 1


def test_deterministic_given_rng_seed():
    for sampler in (TSNSampler(8), DenseSampler(4), ClipSampler(8, 2)):
        a, b = sampler(200, rng(7)), sampler(200, rng(7))
        assert np.array_equal(a, b)
        others = [sampler(200, rng(s)) for s in range(8, 16)]
        assert any(not np.array_equal(a, o) for o in others)


def test_eval_modes_ignore_rng():
    for sampler in (TSNSampler(8, mode="val"), DenseSampler(4, mode="test", num_clips=3),
                    ClipSampler(8, 2, mode="test", num_clips=2)):
        assert np.array_equal(sampler(90, rng(1)), sampler(90, rng(2)))


def test_zero_frames_is_an_error():
    for sampler in (TSNSampler(8), DenseSampler(4), ClipSampler(8)):
        with pytest.raises(ValueError, match="at least one frame"):
            sampler(0, rng())


# ---- dense sampling ------------------------------------------------------------------------------

def test_dense_train_window():
    for seed in range(20):
        idx = DenseSampler(8)(100, rng(seed))[0]
        assert np.all(np.diff(idx) == 8)  # stride 64 // 8
        assert 0 <= idx[0] <= 100 - 64


def test_dense_short_video_wraps():
    assert DenseSampler(4, mode="val")(20, rng()).tolist() == [[0, 16, 12, 8]]


def test_dense_test_evenly_spaced_windows():
    # 100 - 64 + 1 = 37 valid starts; clips at floor(37 * (c + 0.5) / 3) = 6, 18, 30
    idx = DenseSampler(4, mode="test", num_clips=3)(100, rng())
    assert idx[:, 0].tolist() == [6, 18, 30]
    assert np.all(np.diff(idx, axis=1) == 16)
    assert DenseSampler(4, mode="val")(100, rng())[0, 0] == 18


def test_dense_new_length():
    assert DenseSampler(2, 2, window=8, mode="val")(8, rng()).tolist() == [[0, 1, 4, 5]]


# ---- clip sampling -------------------------------------------------------------------------------

def test_clip_train_random_start_consecutive():
    starts = set()
    for seed in range(50):
        idx = ClipSampler(4, 3)(20, rng(seed))[0]
        assert np.all(np.diff(idx) == 3) and 0 <= idx[0] and idx[-1] <= 19
        starts.add(int(idx[0]))
    assert starts == set(range(20 - 9))


def test_clip_val_centred_and_test_spread():
    assert ClipSampler(4, 1, mode="val")(10, rng()).tolist() == [[3, 4, 5, 6]]
    assert ClipSampler(2, 1, mode="test", num_clips=3)(10, rng()).tolist() == [[1, 2], [4, 5], [7, 8]]


def test_clip_short_video_loop_or_repeat_last():
    assert ClipSampler(6, 1, mode="train", short="loop")(4, rng()).tolist() == [[0, 1, 2, 3, 0, 1]]
    assert ClipSampler(6, 1, mode="val", short="repeat_last")(4, rng()).tolist() == [[0, 1, 2, 3, 3, 3]]
    assert ClipSampler(3, 2, mode="test", num_clips=2, short="loop")(4, rng()).tolist() == [[0, 2, 0]] * 2


def test_reprs_show_settings():
    assert repr(TSNSampler(8, 2, mode="test", num_clips=3)) == (
        "TSNSampler(num_segments=8, new_length=2, mode='test', num_clips=3, twice_sample=False)")
    assert "window=64" in repr(DenseSampler(8)) and "stride=8" in repr(DenseSampler(8))
    assert "short='repeat_last'" in repr(ClipSampler(16, short="repeat_last"))


def test_bad_settings():
    with pytest.raises(ValueError, match="mode"):
        TSNSampler(8, mode="training")
    with pytest.raises(ValueError, match="window"):
        DenseSampler(100, window=64)
    with pytest.raises(ValueError, match="short"):
        ClipSampler(8, short="pad")


@pytest.mark.parametrize("inner", [TSNSampler(4, mode="test", num_clips=2), ClipSampler(5, 2, "test", num_clips=3)])
def test_time_reversed_plays_the_same_frames_backwards(inner):
    forward, backward = inner(37, rng()), TimeReversed(inner)(37, rng())
    assert backward.shape == forward.shape and backward.flags.c_contiguous
    assert np.array_equal(backward, forward[:, ::-1])
    assert repr(TimeReversed(inner)) == f"TimeReversed({inner!r})"
