"""examples/compare_rollouts.py runs end to end on the shipped digits and reports both rollout paths (a crash and
report-shape test; what the fits learn is measured by running the script)."""


def test_compare_rollouts_reports_both_paths(tmp_path, example):
    compare_rollouts = example("compare_rollouts")
    out = tmp_path / "compare.json"
    result = compare_rollouts.main(["--images", "64", "--seeds", "2", "--steps", "2", "--out", str(out)])
    assert out.exists()
    assert sorted((f["rollouts"], f["seed"]) for f in result["fits"]) == [
        ("batched", 0),
        ("batched", 1),
        ("per_image", 0),
        ("per_image", 1),
    ]
    assert len(result["tv_cross_path"]) == 2
    assert len(result["tv_cross_seed"]["batched"]) == len(result["tv_cross_seed"]["per_image"]) == 1
    assert len(result["tfs"]) == 30
