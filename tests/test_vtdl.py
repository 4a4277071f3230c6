"""VTDL: EMA update, queue ring order, disjoint temporal negatives, TCA, the loss, the hooks,
fine-tuning into the plain clip model, and the key gather under a 2-process gloo group."""
import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn

from ops.checkpoint import make_checkpoint, save_checkpoint
from ops.checkpoint_formats import load_weights
from ops.models import build_model
from ops.policies import freeze_for_linear_probe
from opts import default_config
from selfsupervision.vtdl import (VTDL, TemporalPairSampler, concat_all_gather,
                                  temporal_consistent_augmentation)


class TinyClipNet(nn.Module):
    """A stand-in clip model: conv -> BN -> pooled features, plus a classifier VTDL never uses."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm3d(8)

    def forward_features(self, x):
        return self.bn(self.conv(x)).relu().mean((2, 3, 4))


def tiny_vtdl(**kwargs):
    return VTDL(TinyClipNet(), 8, clip_len=4, frame_stride=1, crop_size=16, dim=4, **kwargs)


def test_ema_update_formula():
    torch.manual_seed(0)
    model = tiny_vtdl(queue_size=6, momentum=0.9)
    with torch.no_grad():
        for p in model.encoder_q.parameters():
            p.add_(1.0)
    before_q = [p.clone() for p in model.encoder_q.parameters()]
    before_k = [p.clone() for p in model.encoder_k.parameters()]
    model.momentum_update()
    for q, k0, k1 in zip(before_q, before_k, model.encoder_k.parameters()):
        assert torch.allclose(k1, 0.9 * k0 + 0.1 * q)
    assert all(not p.requires_grad for p in model.encoder_k.parameters())


def test_queue_is_a_ring_in_arrival_order():
    model = tiny_vtdl(queue_size=5)
    batches = [torch.full((2, 4), float(i)) for i in range(1, 5)]   # keys 1,1,2,2,3,3,4,4
    for keys in batches:
        model.enqueue(keys)
    # 8 keys into 5 slots: slots 0-2 were overwritten by the 6th-8th keys (3, 4, 4)
    assert model.queue[:, 0].tolist() == [3, 4, 4, 2, 3]
    assert int(model.queue_ptr) == 3
    model.enqueue(torch.arange(7.0)[:, None].expand(7, 4))   # more keys than slots: the last 5 stay
    assert sorted(model.queue[:, 0].tolist()) == [2, 3, 4, 5, 6]
    assert model.queue[(int(model.queue_ptr) - 1) % 5, 0].item() == 6


@pytest.mark.parametrize("clip_len,stride", [(16, 4), (8, 2), (1, 3)])
def test_temporal_negative_never_overlaps(clip_len, stride):
    sampler = TemporalPairSampler(clip_len, stride)
    rng = np.random.default_rng(0)
    first_counts = 0
    for num_frames in list(range(2, 40)) + [60, 61, 121, 122, 300]:
        for _ in range(30):
            idx = sampler(num_frames, rng)
            assert idx.shape == (2, clip_len) and idx.dtype == np.int64
            assert idx.min() >= 0 and idx.max() < num_frames
            (a0, a1), (n0, n1) = (idx[0].min(), idx[0].max()), (idx[1].min(), idx[1].max())
            assert a1 < n0 or n1 < a0, (num_frames, idx)
            assert np.all(np.diff(idx, axis=1) >= 0)
            first_counts += a0 < n0
    assert 0.3 < first_counts / ((38 + 5) * 30) < 0.7             # anchor before or after, both happen
    if clip_len > 1:
        long = sampler(1000, rng)
        assert np.all(np.diff(long, axis=1) == stride)            # long videos keep the stride
    with pytest.raises(ValueError, match="2 frames"):
        sampler(1, rng)


def test_tca_keeps_direction_and_scales_differences():
    torch.manual_seed(0)
    clips = torch.randn(4, 3, 6, 5, 5)
    gen = torch.Generator().manual_seed(3)
    out = temporal_consistent_augmentation(clips, 0.1, generator=gen)
    gen = torch.Generator().manual_seed(3)
    lam = torch.rand(4, generator=gen) * 0.1
    assert lam.min() > 0 and lam.max() < 0.1
    for b in range(4):
        for t in range(5):
            d_in = clips[b, :, t + 1] - clips[b, :, t]
            d_out = out[b, :, t + 1] - out[b, :, t]
            assert torch.equal(torch.sign(d_in[d_in.abs() > 1e-4]), torch.sign(d_out[d_in.abs() > 1e-4]))
            assert torch.allclose(d_out, (1 - lam[b]) * d_in, atol=1e-5)
    assert not torch.allclose(out, clips)


@pytest.mark.filterwarnings("ignore:VTDL trained on one process")
def test_loss_metrics_and_state_only_change_in_training():
    torch.manual_seed(0)
    model = tiny_vtdl(queue_size=10)
    x = torch.randn(3, 3, 3, 4, 16, 16)
    model.eval()
    queue, key_weights = model.queue.clone(), model.encoder_k.conv.weight.clone()
    out = model(x)
    assert set(out) == {"losses", "metrics"}
    assert set(out["metrics"]) == {"pretext_top1", "pretext_top5", "temporal_acc"}
    assert torch.equal(model.queue, queue) and int(model.queue_ptr) == 0
    out = model.train()(x)
    out["losses"]["infonce"].backward()
    assert int(model.queue_ptr) == 3 and not torch.equal(model.queue, queue)
    assert torch.allclose(model.queue.norm(dim=1), torch.ones(10))
    assert model.encoder_q.conv.weight.grad is not None and model.encoder_k.conv.weight.grad is None
    assert not torch.equal(model.encoder_k.conv.weight, key_weights) or model.momentum == 1


def test_loss_matches_the_formula():
    torch.manual_seed(0)
    model = tiny_vtdl(queue_size=7, tca_max=0.0).eval()
    x = torch.randn(2, 3, 3, 4, 16, 16)
    q, k, n = model.embed_q(x[:, 0]), model.embed_k(x[:, 1]), model.embed_q(x[:, 2])
    t = model.temperature
    pos = torch.exp((q * k).sum(1) / t)
    denom = pos + torch.exp(q @ model.queue.t() / t).sum(1) + torch.exp((q * n).sum(1) / t)
    expected = -torch.log(pos / denom).mean()
    assert torch.allclose(model(x)["losses"]["infonce"], expected, atol=1e-5)
    no_tn = tiny_vtdl(queue_size=7, tca_max=0.0, temporal_negative=False)
    no_tn.load_state_dict(model.state_dict())
    assert no_tn.eval()(x)["losses"]["infonce"] < model(x)["losses"]["infonce"]


def test_hooks_give_three_views_of_two_clips():
    model = tiny_vtdl(queue_size=4)
    sampler, transform = model.make_sampler("train"), model.make_transform("train")
    rng = np.random.default_rng(0)
    idx = sampler(30, rng)
    frames = np.random.default_rng(1).integers(0, 256, (2, 4, 24, 30, 3), dtype=np.uint8)
    views, label = transform(frames, 5, rng)
    assert views.shape == (3, 4, 16, 16, 3) and views.dtype == torch.uint8 and label == 5
    assert not torch.equal(views[0], views[1])                 # two independent augmentations
    assert idx.shape == (2, 4)


def test_pretrained_backbone_lands_in_the_plain_clip_model(tmp_path, caplog):
    caplog.set_level("INFO")
    cfg = default_config(ssl="vtdl", arch="r3d18", num_class=5, crop_size=32, clip_len=4, frame_stride=1, moco_k=8)
    ssl = build_model(cfg)
    assert "fc.weight" in caplog.text                  # the unused classifier is left out
    assert not any(k.startswith("encoder_q.fc.") for k in ssl.state_dict())
    path = save_checkpoint(make_checkpoint(ssl, config=cfg), str(tmp_path / "vtdl.pth"))
    clip = build_model(dict(cfg, ssl=None))
    report = load_weights(clip, path)
    assert report["missing"] == ["fc.bias", "fc.weight"]
    for name, value in clip.state_dict().items():
        if not name.startswith("fc."):
            assert torch.equal(value, ssl.state_dict()["encoder_q." + name]), name
    trainable = freeze_for_linear_probe(clip, report["missing"])
    assert trainable == ["fc.bias", "fc.weight"]
    clip.train()
    stats = clip.layer1[0].conv1[1].running_mean.clone()
    clip(torch.randn(2, 3, 4, 32, 32)).sum().backward()
    assert not clip.layer1[0].conv1[1].training and clip.dropout.training   # the frozen parts run as in eval
    assert torch.equal(stats, clip.layer1[0].conv1[1].running_mean)
    assert clip.stem[0].weight.grad is None and clip.fc.weight.grad is not None


def _gather_worker(rank, port, out):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)                          # the same weights on both ranks, as under DDP
        model = tiny_vtdl(queue_size=6)
        torch.manual_seed(1 + rank)
        model.load_state_dict({k: torch.zeros_like(v) if k == "queue" else v for k, v in model.state_dict().items()})
        model.enqueue(concat_all_gather(torch.full((2, 4), float(rank + 1))))
        torch.save(model.queue.clone(), os.path.join(out, f"queue{rank}.pt"))
        # shuffled keys come back in this rank's order (BatchNorm on running statistics, so that a
        # key depends on its own clip only, while training mode takes the shuffling path)
        model.train()
        model.encoder_k.bn.eval()
        x = torch.randn(3, 3, 4, 16, 16)
        shuffled = model.shuffled_keys(x)
        torch.save((shuffled, model.embed_k(x)), os.path.join(out, f"keys{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_keys_are_gathered_from_every_rank_and_unshuffled(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_gather_worker, args=(port, str(tmp_path)), nprocs=2)
    q0, q1 = (torch.load(tmp_path / f"queue{r}.pt") for r in (0, 1))
    assert torch.equal(q0, q1)
    assert q0[:, 0].tolist() == [1, 1, 2, 2, 0, 0]
    for rank in (0, 1):
        shuffled, direct = torch.load(tmp_path / f"keys{rank}.pt")
        assert torch.allclose(shuffled, direct, atol=1e-6)


@pytest.mark.filterwarnings("ignore:VTDL trained on one process")
def test_pretrain_then_finetune_then_test_through_main(tmp_path, capsys):
    """main.py end to end on a tiny list: VTDL pre-training of r3d18, fine-tuning of the plain
    r3d18 from its checkpoint (only the classifier is new), then evaluation."""
    import main
    from tests.videogen import write_list_dataset

    root = tmp_path / "data"
    write_list_dataset(str(root), num_videos=6, num_train=4)
    common = ["custom", "RGB", "--root_path", str(root), "--num_class", "3", "--train_list", str(root / "train.txt"),
              "--val_list", str(root / "val.txt"), "--arch", "r3d18", "--clip_len", "4", "--frame_stride", "2",
              "--crop_size", "16", "--epochs", "1", "-b", "2", "-j", "0", "--no_progress",
              "--root_log", str(tmp_path / "log"), "--root_model", str(tmp_path / "ckpt")]
    main.main(common + ["--ssl", "vtdl", "--moco_k", "16", "--lr", "0.003", "--suffix", "pre"])
    pre = next((tmp_path / "ckpt").glob("*_pre/ckpt.best.pth"))
    log = next((tmp_path / "log").glob("*_pre/log.txt")).read_text()
    assert "pretext_top1" in log and "temporal_acc" in log
    capsys.readouterr()
    main.main(common + ["--tune_from", str(pre), "--suffix", "ft"])
    out = capsys.readouterr().out
    assert "new, the source has none (2): fc (2)" in out
    assert "pre-training heads left out" in out and "encoder_k." in out
    log = next((tmp_path / "log").glob("*_ft/log.txt")).read_text()   # the fine-tune report is in the run's log
    assert log.count("new, the source has none (2): fc (2)") == 1 and "(own layout): loaded" in log
    ft = next((tmp_path / "ckpt").glob("*_ft/ckpt.pth"))
    stats = main.main(common + ["--tune_from", str(ft), "--evaluate", "--suffix", "test"])
    assert stats["num_videos"] == 2 and 0 <= stats["top1"] <= 100


def test_one_process_bn_splits_shuffle_keys_across_batchnorm_groups():
    """bn_splits=2 on one process: queries get per-chunk BatchNorm statistics, keys are encoded in
    chunks of a random permutation and come back in order (MoCo's shuffling BN on 2 ranks)."""
    torch.manual_seed(0)
    model = tiny_vtdl(queue_size=10, bn_splits=2).train()
    x = torch.randn(6, 3, 4, 16, 16)
    chunked = torch.cat([model.embed_q(c) for c in x.chunk(2)])
    assert torch.allclose(model.split(model.embed_q, x), chunked)
    assert not torch.allclose(chunked, model.embed_q(x), atol=1e-4)     # whole-batch statistics differ
    torch.manual_seed(1)
    keys = model.shuffled_keys(x)
    torch.manual_seed(1)
    perm = torch.randperm(6)
    expected = torch.cat([model.embed_k(c) for c in x[perm].chunk(2)])[torch.argsort(perm)]
    assert torch.allclose(keys, expected, atol=1e-6)
    assert torch.allclose(model.eval().split(model.embed_q, x), model.embed_q(x))   # eval: running statistics
    with pytest.warns(UserWarning, match="bn_splits"):
        tiny_vtdl(queue_size=10).train().shuffled_keys(x)
    with pytest.raises(ValueError, match="bn_splits"):
        tiny_vtdl(bn_splits=0)
