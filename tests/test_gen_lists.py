import json
import os
import re
import subprocess
import sys

import pytest

from ops.dataset_configs import get_dataset_config
from tools import gen_lists as gl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def touch_frames(folder, n, tmpl="img_{:05d}.jpg"):
    os.makedirs(folder, exist_ok=True)
    for i in range(1, n + 1):
        open(os.path.join(folder, tmpl.format(i)), "wb").close()


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def read_list(path):
    with open(path) as f:
        return [line.split() for line in f]


def frames_of(name):
    """A frame count that differs per video, so a swapped count would show."""
    return 3 + sum(map(ord, name)) % 5


# ---------------------------------------------------------------- UCF101

UCF_CLASSES = ["ApplyEyeMakeup", "HandstandPushups", "YoYo"]


def make_ucf(tmp_path):
    ann, root = tmp_path / "ann", tmp_path / "ucf"
    write(ann / "classInd.txt", "".join(f"{i} {c}\n" for i, c in enumerate(UCF_CLASSES, 1)))
    train, test = [], []
    for k, c in enumerate(UCF_CLASSES):
        stem = "HandStandPushups" if c == "HandstandPushups" else c  # UCF101's own spelling quirk
        for g in range(1, 26):
            for clip in (1, 2):
                video = f"{c}/v_{stem}_g{g:02d}_c{clip:02d}.avi"
                (test if g <= 7 else train).append((video, k))
                touch_frames(root / "rawframes" / video[:-4], frames_of(video))
    write(ann / "trainlist01.txt", "".join(f"{v} {k + 1}\n" for v, k in train))
    write(ann / "testlist01.txt", "".join(f"{v}\n" for v, _ in test))
    return ann, root, train, test


def group_of(path):
    return re.search(r"_g(\d+)_", path).group(1)


def test_ucf101(tmp_path):
    ann, root, train, test = make_ucf(tmp_path)
    assert gl.main(["ucf101", "--annotations", str(ann), "--root", str(root), "--splits", "1"]) == 0
    lists = {s: read_list(root / f"ucf101_{s}_split_1_rawframes.txt") for s in ("train", "val", "test", "trainval")}
    for s, rows in lists.items():
        for path, n, label in rows:
            assert int(n) == frames_of(path[len("rawframes/"):] + ".avi")
            assert UCF_CLASSES[int(label)] == path.split("/")[1]
    assert sorted(lists["trainval"]) == sorted(lists["train"] + lists["val"])
    assert len(lists["trainval"]) == len(train) and len(lists["test"]) == len(test)
    for k in range(len(UCF_CLASSES)):
        tr = {group_of(p) for p, _, lab in lists["train"] if int(lab) == k}
        va = {group_of(p) for p, _, lab in lists["val"] if int(lab) == k}
        assert len(va) == 2 and not tr & va  # 10% of 18 groups, whole groups only
    with open(root / "classInd.txt") as f:
        assert f.read().split() == [str(x) for pair in enumerate(UCF_CLASSES, 1) for x in pair]
    # the held-out groups do not depend on the run
    os.remove(root / "ucf101_val_split_1_rawframes.txt")
    assert gl.main(["ucf101", "--annotations", str(ann), "--root", str(root), "--splits", "1"]) == 0
    assert read_list(root / "ucf101_val_split_1_rawframes.txt") == lists["val"]


def test_ucf101_missing_frames_fail_unless_allowed(tmp_path, capsys):
    ann, root, train, _ = make_ucf(tmp_path)
    gone = root / "rawframes" / train[0][0][:-4]
    for p in gone.iterdir():
        p.unlink()
    args = ["ucf101", "--annotations", str(ann), "--root", str(root), "--splits", "1"]
    assert gl.main(args) == 1
    assert not (root / "ucf101_train_split_1_rawframes.txt").exists()
    report = (root / "ucf101_missing.txt").read_text().splitlines()
    assert len(report) == 1 and report[0].startswith(f"rawframes/{train[0][0][:-4]}\t") and "no frames" in report[0]
    assert "--allow_missing" in capsys.readouterr().err
    assert gl.main(args + ["--allow_missing"]) == 0
    listed = [p for p, _, _ in read_list(root / "ucf101_trainval_split_1_rawframes.txt")]
    assert len(listed) == len(train) - 1 and f"rawframes/{train[0][0][:-4]}" not in listed


def test_ucf101_video_lists(tmp_path):
    ann, root, train, test = make_ucf(tmp_path)
    for video, _ in train + test:
        write(root / "videos" / video, "")
    assert gl.main(["ucf101", "--annotations", str(ann), "--root", str(root), "--splits", "1",
                    "--format", "video"]) == 0
    rows = read_list(root / "ucf101_test_split_1_videos.txt")
    assert rows[0] == [f"videos/{test[0][0]}", str(test[0][1])]


def test_bad_split_line_names_file_and_line(tmp_path):
    ann, root, _, _ = make_ucf(tmp_path)
    with open(ann / "trainlist01.txt", "a") as f:
        f.write("YoYo/v_YoYo_g09_c09.avi 104\n")
    with pytest.raises(gl.AnnotationError, match=r"trainlist01.txt line \d+"):
        gl.ucf101(str(ann), 1)


@pytest.mark.parametrize("name", gl.DATASETS)
def test_frame_templates_match_dataset_table(name, tmp_path):
    assert gl.FRAME_TMPL[name] == get_dataset_config(name, root=str(tmp_path)).image_tmpl


def test_frame_gap_reported(tmp_path):
    touch_frames(tmp_path / "v", 4)
    os.remove(tmp_path / "v" / "img_00002.jpg")
    n, problem = gl.count_frames(str(tmp_path / "v"), "img_{:05d}.jpg")
    assert n == 3 and "not numbered" in problem
    assert gl.count_frames(str(tmp_path / "nope"), "img_{:05d}.jpg")[1] == "no frame folder"


# ---------------------------------------------------------------- HMDB51

def test_hmdb51_tags(tmp_path):
    ann, root = tmp_path / "ann", tmp_path / "hmdb"
    tags = {"wave": {"a.avi": 1, "b.avi": 2, "c.avi": 0, "d.avi": 1}, "brush_hair": {"e.avi": 2, "f.avi": 1}}
    for c, videos in tags.items():
        write(ann / f"{c}_test_split1.txt", "".join(f"{v} {t} \n" for v, t in videos.items()))
        write(ann / f"{c}_test_split2.txt", "".join(f"{v} 1\n" for v in videos))
        for v in videos:
            touch_frames(root / "rawframes" / c / v[:-4], frames_of(v))
    assert gl.main(["hmdb51", "--annotations", str(ann), "--root", str(root), "--splits", "1", "2"]) == 0
    got = {s: read_list(root / f"hmdb51_{s}_split_1_rawframes.txt") for s in ("train", "val", "test")}
    assert got["train"] == [["rawframes/brush_hair/f", str(frames_of("f.avi")), "0"],
                            ["rawframes/wave/a", str(frames_of("a.avi")), "1"],
                            ["rawframes/wave/d", str(frames_of("d.avi")), "1"]]
    assert [r[0] for r in got["val"]] == ["rawframes/wave/c"]
    assert [(r[0], r[2]) for r in got["test"]] == [("rawframes/brush_hair/e", "0"), ("rawframes/wave/b", "1")]
    assert len(read_list(root / "hmdb51_train_split_2_rawframes.txt")) == 6
    assert (root / "classes.txt").read_text().split() == ["brush_hair", "wave"]


# ---------------------------------------------------------------- Something-Something, Jester

def test_something_v1_labels_in_csv_order(tmp_path):
    ann, root = tmp_path / "ann", tmp_path / "sth"
    labels = ["Holding something", "Turning something upside down", "Turning the camera left while filming something"]
    write(ann / "something-something-v1-labels.csv", "\n".join(labels) + "\n")
    write(ann / "something-something-v1-train.csv", f"11;{labels[2]}\n12;{labels[0]}\n")
    write(ann / "something-something-v1-validation.csv", f"13;{labels[1]}\n")
    for vid in ("11", "12", "13"):
        touch_frames(root / "frames" / vid, int(vid) - 8, "{:05d}.jpg")
    assert gl.main(["something", "--annotations", str(ann), "--root", str(root), "--frames_dir", "frames"]) == 0
    assert read_list(root / "something_train_rawframes.txt") == [["frames/11", "3", "2"], ["frames/12", "4", "0"]]
    assert read_list(root / "something_val_rawframes.txt") == [["frames/13", "5", "1"]]
    assert (root / "classes.txt").read_text().splitlines() == labels


def test_jester_unknown_label_is_an_error(tmp_path):
    ann = tmp_path / "ann"
    write(ann / "jester-v1-labels.csv", "Swiping Left\nSwiping Right\n")
    write(ann / "jester-v1-train.csv", "1;Swiping Left\n2;Swiping Up\n")
    write(ann / "jester-v1-validation.csv", "3;Swiping Right\n")
    with pytest.raises(gl.AnnotationError, match="jester-v1-train.csv line 2"):
        gl.jester(str(ann))


def test_jester(tmp_path):
    ann, root = tmp_path / "ann", tmp_path / "jester"
    write(ann / "jester-v1-labels.csv", "Swiping Left\nSwiping Right\n")
    write(ann / "jester-v1-train.csv", "1;Swiping Right\n2;Swiping Left\n")
    write(ann / "jester-v1-validation.csv", "3;Swiping Right\n")
    for vid in "123":
        touch_frames(root / "rawframes" / vid, 2, "{:05d}.jpg")
    assert gl.main(["jester", "--annotations", str(ann), "--root", str(root)]) == 0
    assert read_list(root / "jester_train_rawframes.txt") == [["rawframes/1", "2", "1"], ["rawframes/2", "2", "0"]]


def test_somethingv2_template_without_brackets(tmp_path):
    ann, root = tmp_path / "ann", tmp_path / "sthv2"
    labels = {"Holding something next to something": "1", "Approaching something with your camera": "0"}
    write(ann / "something-something-v2-labels.json", json.dumps(labels))
    train = [{"id": "78687", "label": "holding potato next to vicks",
              "template": "Holding [something] next to [something]", "placeholders": ["potato", "vicks"]},
             {"id": "42326", "label": "approaching door with your camera",
              "template": "Approaching [something] with your camera", "placeholders": ["door"]}]
    write(ann / "something-something-v2-train.json", json.dumps(train))
    write(ann / "something-something-v2-validation.json", json.dumps(train[:1]))
    for e in train:
        touch_frames(root / "rawframes" / e["id"], 3, "{:06d}.jpg")
    assert gl.main(["somethingv2", "--annotations", str(ann), "--root", str(root)]) == 0
    assert read_list(root / "somethingv2_train_rawframes.txt") == [["rawframes/78687", "3", "1"],
                                                                    ["rawframes/42326", "3", "0"]]
    assert (root / "classes.txt").read_text().splitlines() == ["Approaching something with your camera",
                                                                "Holding something next to something"]
    for e in train:
        write(root / "videos" / f"{e['id']}.webm", "")
    assert gl.main(["somethingv2", "--annotations", str(ann), "--root", str(root), "--format", "video"]) == 0
    assert read_list(root / "somethingv2_val_videos.txt") == [["videos/78687.webm", "1"]]


# ---------------------------------------------------------------- Kinetics

def make_kinetics(tmp_path):
    ann, root = tmp_path / "ann", tmp_path / "k400"
    header = "label,youtube_id,time_start,time_end,split\n"
    write(ann / "kinetics-400_train.csv", header + "abseiling,aaa,10,20,train\n"
          '"passing American football (in game)",bbb,0,10,train\n')
    write(ann / "kinetics-400_val.csv", header + "abseiling,ccc,5,15,val\n")
    write(ann / "kinetics-400_test.csv", "youtube_id,time_start,time_end,split\nddd,1,11,test\n")
    write(root / "videos" / "train" / "abseiling" / "aaa_000010_000020.mp4", "")
    write(root / "videos" / "train" / "passing_American_football_(in_game)" / "bbb_000000_000010.mp4", "")
    write(root / "videos" / "val" / "abseiling" / "ccc_000005_000015.mp4", "")
    return ann, root


def test_kinetics_video_lists_find_files_by_name(tmp_path):
    ann, root = make_kinetics(tmp_path)
    assert gl.main(["kinetics", "--annotations", str(ann), "--root", str(root), "--format", "video"]) == 0
    assert read_list(root / "kinetics_train_videos.txt") == [
        ["videos/train/abseiling/aaa_000010_000020.mp4", "0"],
        ["videos/train/passing_American_football_(in_game)/bbb_000000_000010.mp4", "1"]]
    assert read_list(root / "kinetics_val_videos.txt") == [["videos/val/abseiling/ccc_000005_000015.mp4", "0"]]
    assert not (root / "kinetics_test_videos.txt").exists()  # the test csv has no labels
    assert (root / "classes.txt").read_text().splitlines() == ["abseiling", "passing American football (in game)"]
    os.remove(root / "videos" / "val" / "abseiling" / "ccc_000005_000015.mp4")
    assert gl.main(["kinetics", "--annotations", str(ann), "--root", str(root), "--format", "video"]) == 1
    assert (root / "kinetics_missing.txt").read_text() == "videos/ccc_000005_000015\tval\tno video file\n"


def test_kinetics_rawframes_and_whitespace(tmp_path):
    ann, root = make_kinetics(tmp_path)
    touch_frames(root / "rawframes" / "aaa_000010_000020", 4)
    touch_frames(root / "rawframes" / "bbb_000000_000010", 5)
    touch_frames(root / "rawframes" / "abseiling val" / "ccc_000005_000015", 6)
    assert gl.main(["kinetics", "--annotations", str(ann), "--root", str(root)]) == 1
    assert "whitespace" in (root / "kinetics_missing.txt").read_text()
    assert gl.main(["kinetics", "--annotations", str(ann), "--root", str(root), "--allow_missing"]) == 0
    assert read_list(root / "kinetics_train_rawframes.txt") == [["rawframes/aaa_000010_000020", "4", "0"],
                                                                 ["rawframes/bbb_000000_000010", "5", "1"]]
    assert read_list(root / "kinetics_val_rawframes.txt") == []


# ---------------------------------------------------------------- bad annotation files

def test_annotation_error_is_one_line_and_exit_status_1(tmp_path, capsys):
    ann, root, _, _ = make_ucf(tmp_path)
    with open(ann / "trainlist01.txt", "a") as f:
        f.write("YoYo/v_YoYo_g09_c09.avi 104\n")
    assert gl.main(["ucf101", "--annotations", str(ann), "--root", str(root), "--splits", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"gen_lists.py: error: {ann}/trainlist01.txt line ")
    (ann / "classInd.txt").write_bytes("1 Caf\xe9\n".encode("latin-1"))   # not UTF-8
    assert gl.main(["ucf101", "--annotations", str(ann), "--root", str(root), "--splits", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"gen_lists.py: error: {ann}/classInd.txt line 1: not UTF-8 text (invalid continuation byte)"


def test_byte_order_mark_is_accepted(tmp_path):
    ann, root, _, _ = make_ucf(tmp_path)
    expected = {}
    assert gl.main(["ucf101", "--annotations", str(ann), "--root", str(root), "--splits", "1"]) == 0
    for name in os.listdir(root):
        if name.endswith(".txt"):
            expected[name] = (root / name).read_text()
    for name in ("classInd.txt", "trainlist01.txt", "testlist01.txt"):   # as Windows' Notepad saves them
        (ann / name).write_text("\ufeff" + (ann / name).read_text(), encoding="utf-8")
    assert gl.main(["ucf101", "--annotations", str(ann), "--root", str(root), "--splits", "1"]) == 0
    assert {name: (root / name).read_text() for name in expected} == expected


def test_somethingv2_json_is_utf8_whatever_the_locale(tmp_path):
    """Under a C locale Python's default text encoding is ASCII: the json, with its 'taschentücher'
    template, and the class names written back must still be UTF-8."""
    ann, root = tmp_path / "ann", tmp_path / "sthv2"
    labels = {"Putting taschentücher into something": "0"}
    train = [{"id": "7", "template": "Putting taschentücher into [something]", "placeholders": ["a box"]}]
    os.makedirs(ann)
    for name, data in (("labels", labels), ("train", train), ("validation", train)):
        (ann / f"something-something-v2-{name}.json").write_text(json.dumps(data, ensure_ascii=False),
                                                                  encoding="utf-8")
    touch_frames(root / "rawframes" / "7", 2, "{:06d}.jpg")
    env = dict(os.environ, LC_ALL="C", LANG="C", PYTHONCOERCECLOCALE="0", PYTHONUTF8="0")
    done = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "gen_lists.py"), "somethingv2",
                           "--annotations", str(ann), "--root", str(root)], env=env, capture_output=True, text=True,
                          encoding="utf-8")
    assert done.returncode == 0, done.stderr
    assert (root / "classes.txt").read_text(encoding="utf-8") == "Putting taschentücher into something\n"
    assert read_list(root / "somethingv2_train_rawframes.txt") == [["rawframes/7", "2", "0"]]
