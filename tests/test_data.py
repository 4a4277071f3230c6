"""Datasets and loaders of a run: exact validation sharding, model data hooks, clear size errors."""
import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.utils.data import DistributedSampler

from ops.data import ShardSampler, build_dataset, build_loader
from ops.dataset_configs import get_dataset_config
from ops.model_api import InputSpec
from ops.sampling import ClipSampler, TSNSampler
from opts import default_config
from tests.videogen import make_frames, write_frame_folder


@pytest.mark.parametrize("length,world", [(13, 2), (5, 4), (2, 3)])
def test_shard_sampler_covers_every_video_once(length, world):
    shards = [list(ShardSampler(length, rank, world)) for rank in range(world)]
    assert sorted(i for shard in shards for i in shard) == list(range(length))
    assert [len(ShardSampler(length, rank, world)) for rank in range(world)] == [len(s) for s in shards]


class Fake(nn.Module):
    def __init__(self, layout="frames", hooks=False):
        super().__init__()
        self.input_spec = InputSpec(layout=layout, crop_size=16, scale_size=16)
        if hooks:
            self.make_sampler = lambda mode: ClipSampler(3, 1, mode=mode, num_clips=2)


@pytest.fixture()
def dataset_cfg(tmp_path):
    lines = []
    for i in range(3):
        write_frame_folder(str(tmp_path / f"v{i}"), make_frames(8, 24, 32, seed=i))
        lines.append(f"v{i} 8 {i % 2}\n")
    (tmp_path / "list.txt").write_text("".join(lines))
    return get_dataset_config("custom", root=str(tmp_path), num_class=2, train_list=str(tmp_path / "list.txt"),
                              val_list=str(tmp_path / "list.txt"))


def test_default_sampler_follows_layout_and_hooks_replace_it(dataset_cfg):
    cfg = default_config(num_segments=4, new_length=1, clip_len=5, frame_stride=2, clip_sampling="consecutive", seed=0)
    assert isinstance(build_dataset(cfg, Fake(), dataset_cfg, "val").sampler, TSNSampler)
    assert isinstance(build_dataset(cfg, Fake("clip"), dataset_cfg, "val").sampler, ClipSampler)
    ds = build_dataset(cfg, Fake(hooks=True), dataset_cfg, "train")
    frames, label, index = ds[1]
    assert frames.shape == (2, 3, 16, 16, 3) and label == 1 and index == 1


def test_loaders_train_shuffles_val_keeps_everything(dataset_cfg):
    cfg = default_config(num_segments=2, new_length=1, seed=0)
    ds = build_dataset(cfg, Fake(), dataset_cfg, "val")
    val = build_loader(ds, "val", batch_size=2, workers=0)
    seen = np.concatenate([batch[2].numpy() for batch in val])
    assert sorted(seen) == [0, 1, 2]
    train = build_loader(ds, "train", batch_size=2, workers=0)
    assert len(train) == 1  # the incomplete last batch is dropped in training
    with pytest.raises(ValueError, match="fewer than one batch of 4"):
        build_loader(ds, "train", batch_size=4, workers=0)


def test_training_crop_is_the_flag_else_the_dataset_s_else_the_model_s(dataset_cfg, tmp_path):
    def first_step(ds):
        return type(ds.transform.steps[0]).__name__ + type(ds.transform.steps[1]).__name__
    cfg = default_config(num_segments=2, new_length=1, clip_len=2, frame_stride=1, clip_sampling="consecutive", seed=0)
    assert first_step(build_dataset(cfg, Fake(), dataset_cfg, "train")) == \
        "GroupMultiScaleCropGroupRandomHorizontalFlip"  # TSN's published recipe
    assert first_step(build_dataset(cfg, Fake("clip"), dataset_cfg, "train")) == "GroupScaleGroupRandomCrop"
    synthetic = get_dataset_config("synthetic", root=str(tmp_path), train_list=dataset_cfg.train_list,
                                   val_list=dataset_cfg.val_list, test_list=dataset_cfg.val_list)
    assert synthetic.train_aug == "center"
    assert first_step(build_dataset(cfg, Fake(), synthetic, "train")) == "GroupScaleGroupCenterCrop"
    assert first_step(build_dataset(dict(cfg, train_aug="rrc"), Fake(), synthetic, "train")) == \
        "GroupRandomResizedCropGroupRandomHorizontalFlip"
    with pytest.raises(ValueError, match="train_aug must be one of"):
        get_dataset_config("custom", root=str(tmp_path), num_class=2, train_list=dataset_cfg.train_list,
                           train_aug="ten_crop")


def test_persistent_workers_follow_the_sampler_epoch(dataset_cfg):
    """Workers live across epochs and never see dataset.set_epoch after they start, so the epoch
    comes with the index: each epoch's batch is the one set_epoch + plain indexing gives."""
    cfg = default_config(num_segments=2, new_length=1, seed=0)
    ds = build_dataset(cfg, Fake(), dataset_cfg, "train")
    order = DistributedSampler(ds, num_replicas=1, rank=0, shuffle=True, seed=0)
    expected = []
    for epoch in range(2):
        ds.set_epoch(epoch)
        order.set_epoch(epoch)
        expected.append(torch.stack([ds[i][0] for i in order]))
    ds.set_epoch(0)
    loader = build_loader(ds, "train", batch_size=3, workers=1, prefetch_factor=1)
    assert loader.persistent_workers
    for epoch in range(2):
        loader.sampler.set_epoch(epoch)
        assert torch.equal(next(iter(loader))[0], expected[epoch])
    assert not torch.equal(expected[0], expected[1])


@pytest.mark.parametrize("channels_last", [False, True])
def test_a_loader_given_normalize_hands_over_the_step_s_float_input(dataset_cfg, channels_last):
    """On a CPU run the workers normalise (ops.transforms.place_normalize): the loader's batches are
    what DeviceNormalize makes of the uint8 ones, values and memory layout, through a worker process."""
    from ops.transforms import DeviceNormalize, place_normalize
    cfg = default_config(num_segments=2, new_length=1, seed=0)
    ds = build_dataset(cfg, Fake(), dataset_cfg, "val")
    normalize = DeviceNormalize.from_spec(Fake().input_spec, channels_last=channels_last)
    in_loader, in_step = place_normalize(normalize, torch.device("cpu"))
    assert in_loader is normalize and in_step is None
    plain = [batch[0] for batch in build_loader(ds, "val", batch_size=2, workers=0)]
    done = [batch[0] for batch in build_loader(ds, "val", batch_size=2, workers=1, normalize=in_loader)]
    assert len(done) == len(plain) == 2
    for raw, got in zip(plain, done):
        want = normalize(raw)
        assert got.dtype == torch.float32 and torch.equal(got, want) and got.stride() == want.stride()
    # any other device: the step normalises, on that device
    in_loader, in_step = place_normalize(normalize, torch.device("meta"))
    assert in_loader is None and in_step.shift.device.type == "meta"
