import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from PIL import Image

from ops.evaluation import (average_views, compute_metrics, confusion_matrix, gather_names, predict,
                            gather_predictions, pair_direction_accuracy, reversal_direction_accuracy,
                            save_confusion_png)
from tools import synthetic as syn


def test_topk_and_mean_class_accuracy():
    # 4 videos, 6 classes; class 5 is predicted once but never occurs in the ground truth.
    scores = torch.tensor([
        [9, 1, 0, 0, 0, 0],   # label 0, top1 right
        [0, 1, 9, 0, 0, 8],   # label 1, top1 wrong (2), in top5
        [0, 0, 5, 0, 0, 9],   # label 2, top1 wrong (5), in top5
        [0, 0, 0, 9, 1, 0],   # label 3, right
    ], dtype=torch.float)
    labels = torch.tensor([0, 1, 2, 3])
    m = compute_metrics(scores, labels, num_class=6)
    assert m["top1"] == pytest.approx(50.0)
    assert m["top5"] == pytest.approx(100.0)
    # Classes 0..3 present: accuracies 100, 0, 0, 100; absent classes 4, 5 are ignored, not NaN.
    assert m["mean_class_acc"] == pytest.approx(50.0)
    assert np.isnan(m["per_class_acc"][5]) and np.isnan(m["per_class_acc"][4])
    assert m["confusion"][2, 5] == 1 and m["confusion"][1, 2] == 1
    assert m["confusion"].sum() == 4


def test_top5_with_fewer_classes_than_five():
    m = compute_metrics(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([0, 0]), num_class=2)
    assert m["top1"] == pytest.approx(50.0) and m["top5"] == pytest.approx(100.0)


def test_confusion_matrix_rows_are_ground_truth():
    cm = confusion_matrix([1, 1, 0], [0, 1, 0], 2)
    assert cm.tolist() == [[1, 1], [0, 1]]


def test_average_views_softmax_and_raw():
    logits = torch.tensor([[2.0, 0.0], [0.0, 4.0], [1.0, 1.0], [3.0, 3.0]])
    raw = average_views(logits, num_views=2)
    assert torch.allclose(raw, torch.tensor([[1.0, 2.0], [2.0, 2.0]]))
    soft = average_views(logits, num_views=2, softmax=True)
    assert torch.allclose(soft.sum(1), torch.ones(2))
    assert soft[0, 1] > soft[0, 0]  # the confident second view wins after softmax
    assert torch.allclose(soft[1], torch.tensor([0.5, 0.5]))


def test_gather_single_process_drops_duplicates_and_sorts():
    idx = torch.tensor([3, 1, 3, 0])
    scores = torch.tensor([[3.0], [1.0], [3.0], [0.0]])
    labels = torch.tensor([3, 1, 3, 0])
    i, s, l = gather_predictions(idx, scores, labels)
    assert i.tolist() == [0, 1, 3] and s.view(-1).tolist() == [0.0, 1.0, 3.0] and l.tolist() == [0, 1, 3]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gather_worker(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    # 5 videos over 2 ranks, DistributedSampler-style padding repeats video 0 on rank 1; rank 1 also
    # skipped everything but its padded sample, so the ranks hold different row counts.
    local = {0: [0, 2, 4], 1: [1, 0]}[rank]
    idx = torch.tensor(local)
    scores = torch.stack([torch.full((3,), float(v)) for v in local])
    i, s, l = gather_predictions(idx, scores, idx.clone())
    names = gather_names([f"bad{rank}", "shared"])
    torch.save({"i": i, "s": s, "l": l, "names": names}, os.path.join(out_dir, f"{rank}.pt"))
    dist.destroy_process_group()


def test_gather_two_processes_counts_each_video_once(tmp_path):
    mp.spawn(_gather_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        r = torch.load(tmp_path / f"{rank}.pt", weights_only=True)
        assert r["i"].tolist() == [0, 1, 2, 4]
        assert torch.equal(r["s"][:, 0], r["i"].float())
        assert r["l"].tolist() == [0, 1, 2, 4]
        assert r["names"] == ["bad0", "bad1", "shared"]


def test_confusion_png_is_written(tmp_path):
    cm = np.array([[3, 1, 0], [0, 4, 0], [1, 0, 2]])
    path = save_confusion_png(cm, ["walk", "run", "jump"], str(tmp_path / "cm.png"))
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width > 200 and im.height > 200


class _MeanColour(torch.nn.Module):
    """Logits = mean colour of the input, so scores are easy to predict by hand."""

    def forward(self, x):
        return x.mean(dim=(1, 3, 4))  # [N, T, 3, h, w] -> [N, 3]


def test_predict_averages_views_and_passes_over_skipped_batches():
    frames = torch.zeros(2, 3, 1, 2, 2, 3, dtype=torch.uint8)  # 2 videos x 3 views
    frames[0, :, ..., 0] = torch.tensor([30, 60, 90]).view(3, 1, 1, 1)
    frames[1, ..., 2] = 255
    batches = [(None, torch.empty(0), torch.empty(0), ["a.mp4: truncated"]),
               (frames, torch.tensor([0, 2]), torch.tensor([5, 7]), ["b.mp4: frame 3: empty file"])]

    def normalize(x):  # [B, V, T, h, w, 3] uint8 -> [B, V, T, 3, h, w] float
        return x.permute(0, 1, 2, 5, 3, 4).float()

    idx, scores, labels, skipped = predict(_MeanColour(), batches, normalize, torch.device("cpu"), progress=False)
    assert idx.tolist() == [5, 7] and labels.tolist() == [0, 2]
    assert torch.allclose(scores, torch.tensor([[60.0, 0, 0], [0, 0, 255.0]]))
    assert skipped == ["a.mp4: truncated", "b.mp4: frame 3: empty file"]


# The synthetic benchmark's time-reversed pairs as the partner map of the direction accuracies.
PARTNER = syn.time_reversed_partner()


def test_pair_direction_accuracy_scores_only_the_arrow_of_time():
    left, right, ring = (syn.CLASSES.index(c) for c in ("moving_left", "moving_right", "ring"))
    labels = np.array([left, right, ring, left])
    scores = np.zeros((4, len(syn.CLASSES)))
    scores[0, left], scores[0, right] = 2, 1      # right direction
    scores[1, left], scores[1, right] = 3, 1      # wrong direction
    scores[2, ring] = 5                           # appearance video: not counted
    scores[3, left] = scores[3, right] = 1        # blind to order: half
    assert pair_direction_accuracy(scores, labels, PARTNER) == pytest.approx(100 * 1.5 / 3)
    # A model whose scores cannot tell a pair apart is at 50% whatever else it gets right.
    blind = np.ones((4, len(syn.CLASSES)))
    assert pair_direction_accuracy(blind, labels, PARTNER) == pytest.approx(50.0)
    with pytest.raises(ValueError):
        pair_direction_accuracy(scores[2:3], labels[2:3], PARTNER)


def test_reversal_direction_accuracy_compares_each_video_with_its_reversal():
    left, right, ring = (syn.CLASSES.index(c) for c in ("moving_left", "moving_right", "ring"))
    labels = np.array([left, right, ring, left])
    scores, backwards = np.zeros((4, len(syn.CLASSES))), np.zeros((4, len(syn.CLASSES)))
    scores[0, left], backwards[0, right] = 1, 1   # follows the arrow of time
    scores[1, left], backwards[1, left] = 3, 1    # true class right, yet left wins by more forwards: wrong
    scores[2, ring] = 5                           # appearance video: not counted
    scores[3, left], backwards[3, left] = 2, 4    # margin grows when reversed: wrong
    assert reversal_direction_accuracy(scores, backwards, labels, PARTNER) == pytest.approx(100 / 3)
    # Order-blind: identical scores forwards and backwards, exactly 50% whatever the scores are.
    blind = np.random.default_rng(0).normal(size=(4, len(syn.CLASSES)))
    assert reversal_direction_accuracy(blind, blind, labels, PARTNER) == pytest.approx(50.0)
    # ... also when the second pass differs by float32 rounding (frames summed in another order)
    rounding = blind * (1 + 1e-7 * np.random.default_rng(1).choice([-1, 1], size=blind.shape))
    assert reversal_direction_accuracy(blind, rounding, labels, PARTNER) == pytest.approx(50.0)
    with pytest.raises(ValueError):
        reversal_direction_accuracy(scores, backwards[:3], labels, PARTNER)
