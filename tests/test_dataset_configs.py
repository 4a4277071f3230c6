import os

import pytest

from ops.dataset_configs import DATASETS, get_dataset_config, list_file_name, read_class_names


@pytest.fixture(autouse=True)
def data_env(monkeypatch, tmp_path):
    monkeypatch.setenv("STTNET_DATA", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("name,num_class,tmpl,fmt,flip", [
    ("ucf101", 101, "img_{:05d}.jpg", "rawframes", "always"),
    ("hmdb51", 51, "img_{:05d}.jpg", "rawframes", "always"),
    ("something", 174, "{:05d}.jpg", "rawframes", "map"),
    ("somethingv2", 174, "{:06d}.jpg", "rawframes", "map"),
    ("jester", 27, "{:05d}.jpg", "rawframes", "never"),
    ("kinetics", 400, "img_{:05d}.jpg", "video", "always"),
    ("synthetic", 12, "img_{:05d}.jpg", "rawframes", "map"),
])
def test_table(name, num_class, tmpl, fmt, flip, data_env):
    cfg = get_dataset_config(name)
    assert (cfg.num_class, cfg.image_tmpl, cfg.data_format, cfg.flip) == (num_class, tmpl, fmt, flip)
    assert cfg.root == os.path.join(str(data_env), name)
    assert cfg.list_order == "path_frames_label"
    assert os.path.dirname(cfg.train_list) == cfg.root


def test_flip_maps_are_symmetric_pairs():
    assert get_dataset_config("something").flip_map == {2: 4, 4: 2, 30: 41, 41: 30, 52: 66, 66: 52}
    assert get_dataset_config("somethingv2").flip_map == {86: 87, 87: 86, 93: 94, 94: 93, 166: 167, 167: 166}
    assert get_dataset_config("jester").flip_map == {}
    assert get_dataset_config("synthetic").flip_map == {4: 5, 5: 4, 8: 9, 9: 8}


def test_synthetic_matches_generator_classes():
    from tools.synthetic import CLASSES
    classes = list(CLASSES)
    flip_map = get_dataset_config("synthetic").flip_map
    assert {classes[a]: classes[b] for a, b in flip_map.items()} == {
        "moving_left": "moving_right", "moving_right": "moving_left",
        "rotating_clockwise": "rotating_anticlockwise", "rotating_anticlockwise": "rotating_clockwise"}


def test_split_lists_and_video_variant(data_env):
    cfg = get_dataset_config("ucf101", split=3)
    assert os.path.basename(cfg.train_list) == "ucf101_train_split_3_rawframes.txt"
    assert os.path.basename(cfg.val_list) == "ucf101_val_split_3_rawframes.txt"
    assert os.path.basename(cfg.test_list) == "ucf101_test_split_3_rawframes.txt"
    assert get_dataset_config("jester").test_list == get_dataset_config("jester").val_list
    cfg = get_dataset_config("hmdb51", split=2, data_format="video")
    assert os.path.basename(cfg.train_list) == "hmdb51_train_split_2_videos.txt"
    assert os.path.basename(get_dataset_config("kinetics").val_list) == "kinetics_val_videos.txt"
    assert list_file_name("synthetic", "test", "video") == "test_videos.txt"


def test_synthetic_default_root_and_lists(monkeypatch):
    monkeypatch.delenv("STTNET_DATA")
    cfg = get_dataset_config("synthetic")
    assert cfg.root == "data/synthetic"
    assert cfg.train_list == os.path.join("data/synthetic", "train_rawframes.txt")
    assert cfg.test_list == os.path.join("data/synthetic", "test_rawframes.txt")
    assert get_dataset_config("synthetic", root="/x", data_format="video").val_list == "/x/val_videos.txt"


def test_root_required_without_env(monkeypatch):
    monkeypatch.delenv("STTNET_DATA")
    with pytest.raises(ValueError, match="STTNET_DATA"):
        get_dataset_config("ucf101")
    assert get_dataset_config("ucf101", root="/data/ucf").root == "/data/ucf"


def test_unknown_key_lists_known():
    with pytest.raises(ValueError) as e:
        get_dataset_config("ucf102")
    for name in DATASETS:
        assert name in str(e.value)


def test_bad_split_and_format():
    with pytest.raises(ValueError, match="splits"):
        get_dataset_config("ucf101", split=4)
    with pytest.raises(ValueError, match="no official splits"):
        get_dataset_config("jester", split=2)
    with pytest.raises(ValueError, match="rawframes"):
        get_dataset_config("jester", data_format="video")


def test_custom_needs_lists_and_num_class(tmp_path):
    with pytest.raises(ValueError, match="num_class"):
        get_dataset_config("custom", train_list="a.txt")
    with pytest.raises(ValueError, match="list files"):
        get_dataset_config("custom", num_class=3)
    cfg = get_dataset_config("custom", root=str(tmp_path), train_list="tr.txt", val_list="va.txt", num_class=3,
                             list_order="path_label_frames", data_format="video")
    assert (cfg.num_class, cfg.train_list, cfg.test_list, cfg.list_order, cfg.data_format) == (
        3, "tr.txt", "va.txt", "path_label_frames", "video")


def test_overrides_none_keeps_table_and_unknown_rejected():
    cfg = get_dataset_config("ucf101", train_list=None, image_tmpl=None, num_class=None)
    assert cfg.num_class == 101 and cfg.image_tmpl == "img_{:05d}.jpg"
    assert get_dataset_config("ucf101", image_tmpl="image_{:05d}.jpg").image_tmpl == "image_{:05d}.jpg"
    with pytest.raises(ValueError, match="unknown dataset setting"):
        get_dataset_config("ucf101", num_classes=3)
    with pytest.raises(ValueError, match="list_order"):
        get_dataset_config("ucf101", list_order="label_path")
    with pytest.raises(ValueError, match="image_tmpl"):
        get_dataset_config("ucf101", image_tmpl="img_{name}.jpg")


def test_ucf101_class_names_from_class_index(data_env):
    root = data_env / "ucf101"
    root.mkdir()
    (root / "classInd.txt").write_text("".join(f"{k} Class{k}\n" for k in range(1, 102)))
    names = get_dataset_config("ucf101").class_names
    assert len(names) == 101 and names[0] == "Class1" and names[100] == "Class101"


def test_class_names_from_file(data_env):
    root = data_env / "synthetic"
    root.mkdir()
    names = [f"class_{i}" for i in range(12)]
    (root / "classes.txt").write_text("\n".join(names) + "\n")
    cfg = get_dataset_config("synthetic")
    assert cfg.class_names == tuple(names)
    assert "class_names=<12 names>" in repr(cfg)
    (root / "classes.txt").write_text("a\nb\n")
    with pytest.raises(ValueError, match="2 class names for 12 classes"):
        get_dataset_config("synthetic")


def test_read_class_names_numbered(tmp_path):
    path = tmp_path / "classInd.txt"
    path.write_text("2 Archery\n1 ApplyEyeMakeup\n3 Basketball\n")
    assert read_class_names(str(path)) == ("ApplyEyeMakeup", "Archery", "Basketball")


def test_repr_readable():
    text = repr(get_dataset_config("jester"))
    assert text.startswith("DatasetConfig(name='jester', num_class=27,") and "flip='never'" in text
