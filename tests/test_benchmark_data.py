import json

from tools import benchmark_data as bd


def test_benchmark_rows_json_and_ratios(tmp_path):
    out = tmp_path / "bench.json"
    assert bd.main(["--videos", "4", "--frames", "6", "--video_frames", "12", "--gops", "4", "--rounds", "1",
                    "--size", "64", "80", "--crop_size", "48", "--scale_size", "64", "--small_crop", "24",
                    "--small_scale", "32",
                    "--passes", "2", "-b", "2", "--decoders", "decord", "pyav", "--data_dir", str(tmp_path / "d"),
                    "--json", str(out), "--out", str(tmp_path / "bench.md")]) == 0
    result = json.loads(out.read_text())
    names = {(r["data"], r["name"]) for r in result["rows"]}
    assert {("rawframes", "floor simplejpeg"), ("rawframes", "ours train"), ("rawframes", "classic TSN train"),
            ("rawframes", "small: ours (scaled decode)"), ("video gop 4", "floor pyav, 32 consecutive")} <= names
    assert all(r["cpu_ms_per_clip"] > 0 for r in result["rows"])
    assert {"rawframes: fastest floor / ours train", "small: before / ours (speed-up)",
            "video gop 4: pyav, TSN 8 / decord"} <= set(result["ratios"])
    assert "| rawframes | ours train |" in (tmp_path / "bench.md").read_text()
    assert 0 < result["scaled_decode_difference"]["mean"] < 3
    # a user's own list: only that list's rows
    assert bd.main(["--root", str(tmp_path / "d"), "--list", str(tmp_path / "d" / "rawframes.txt"), "--rounds", "1",
                    "--crop_size", "48", "--scale_size", "64", "--small_crop", "24", "--small_scale", "32",
                    "-b", "2", "--json", str(out)]) == 0
    assert {r["data"] for r in json.loads(out.read_text())["rows"]} == {"rawframes"}


def test_generated_frames_in_a_temporary_folder_last_to_the_end(tmp_path):
    """Without --data_dir the frames live in a temporary folder, still there for the pixel check."""
    out = tmp_path / "bench.json"
    assert bd.main(["--formats", "rawframes", "--videos", "2", "--frames", "4", "--rounds", "1", "--size", "64", "80",
                    "--crop_size", "48", "--scale_size", "64", "--small_crop", "24", "--small_scale", "32",
                    "--passes", "2", "-b", "1", "--json", str(out)]) == 0
    assert 0 < json.loads(out.read_text())["scaled_decode_difference"]["mean"] < 3
