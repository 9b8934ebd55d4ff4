"""LearnedPolicyTransform as an Albumentations DualTransform: targets, p, serialisation, replay and seeds."""

from __future__ import annotations

import json

import albumentations as A
import numpy as np
import pytest
from transform_helpers import (
    DOT,
    RECT,
    H,
    W,
    check_box_encloses,
    check_keypoint,
    check_mask,
    dot_centre,
    rect_mask,
    scene,
    smooth_image,
)

from learned_augment.ops import TFSet, apply_sequence
from learned_augment.policy import MeanFieldPolicy, UniformPolicy
from learned_augment.transforms import LearnedPolicyTransform

N_DRAWS = 16


def detection_pipeline(t: LearnedPolicyTransform, **kwargs) -> A.Compose:
    return A.Compose(
        [t],
        bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"]),
        keypoint_params=A.KeypointParams(format="xy", remove_invisible=False),
        **kwargs,
    )


def detection_data() -> dict:
    return {
        "image": scene(),
        "mask": rect_mask(),
        "masks": [rect_mask(), (scene()[..., 1] > 128).astype(np.uint8)],
        "bboxes": [list(RECT)],
        "labels": [7],
        "keypoints": [list(DOT)],
    }


def test_targets_move_with_the_image(geo_policy_path: str) -> None:
    t = LearnedPolicyTransform(geo_policy_path, p=1.0, seed=1)
    pipeline = detection_pipeline(t)
    data = detection_data()
    applied = set()
    for k in range(N_DRAWS):
        out = pipeline(**data)
        what = f"draw {k} {t.last_params['tf_ids_str']}"
        applied.update(t.last_params["tf_ids_str"])
        img = out["image"]
        assert img.shape == (H, W, 3) and img.dtype == np.uint8
        assert out["mask"].shape == (H, W) and out["mask"].dtype == np.uint8
        assert len(out["masks"]) == 2 and all(m.shape == (H, W) for m in out["masks"])
        assert list(out["labels"]) == [7] and len(out["bboxes"]) == 1 and len(out["keypoints"]) == 1
        red = img[..., 0].astype(np.float64)
        check_box_encloses(red, np.asarray(out["bboxes"][0]), what)
        check_mask(out["mask"], red, what)
        check_mask(out["masks"][0], red, what)
        assert np.array_equal(out["mask"], out["masks"][0])
    assert len(applied) >= 8
    assert np.array_equal(data["image"], scene()) and np.array_equal(data["mask"], rect_mask())


def test_keypoints_follow_the_dot(geo_policy_path: str) -> None:
    t = LearnedPolicyTransform(geo_policy_path, p=1.0, seed=2)
    pipeline = detection_pipeline(t)
    checked = 0
    for _ in range(N_DRAWS):
        out = pipeline(**detection_data())
        checked += check_keypoint(out["image"][..., 1], np.asarray(out["keypoints"][0]), str(t.last_params))
    assert checked >= N_DRAWS // 2


@pytest.mark.parametrize(("tf_id", "theirs_cls"), [("hflip", A.HorizontalFlip), ("vflip", A.VerticalFlip)])
def test_flips_match_albumentations_on_every_target(tf_id: str, theirs_cls: type) -> None:
    # Not square, and nothing symmetric about the image's axes, so swapped sizes or a wrong convention show.
    pad = ((2, 5), (3, 13))
    data = {
        "image": np.pad(scene(), (*pad, (0, 0))),
        "mask": np.pad(rect_mask(), pad),
        "masks": [np.pad(rect_mask(), pad)],
        "bboxes": [[4.0, 10.0, 12.0, 20.0], list(RECT)],
        "labels": [1, 2],
        "keypoints": [list(DOT), [5.0, 30.0]],
    }
    t = LearnedPolicyTransform(MeanFieldPolicy(TFSet([tf_id]), seq_len=1), p=1.0)
    ours = detection_pipeline(t)(**data)
    theirs = detection_pipeline(theirs_cls(p=1.0))(**data)
    for key in ("image", "mask"):
        assert np.array_equal(ours[key], theirs[key]), key
    assert all(np.array_equal(a, b) for a, b in zip(ours["masks"], theirs["masks"]))
    np.testing.assert_allclose(ours["bboxes"], theirs["bboxes"], atol=1e-4)
    np.testing.assert_allclose(ours["keypoints"], theirs["keypoints"], atol=1e-4)


def test_targets_equal_the_ops_sequence_even_with_random_tfs(tmp_path) -> None:
    # noise draws one number per pixel *and channel* before elastic draws its field: masks (2-D) must replay the
    # generator exactly as the (3-channel) image consumed it, or the mask's elastic field differs from the image's.
    ts = TFSet(["noise(0.1)", "elastic(4)", "rotate(+20)", "cutout(0.25)"])
    policy = MeanFieldPolicy(ts, seq_len=4)
    t = LearnedPolicyTransform(policy, p=1.0, seed=0)
    pipeline = A.Compose([t])
    data = detection_data()
    seen_noise_then_elastic = False
    for _ in range(12):
        out = pipeline(image=data["image"], mask=data["mask"], masks=data["masks"])
        lp = t.last_params
        ids = list(lp["tf_ids"])
        seen_noise_then_elastic |= any(a == 0 and b == 1 for a, b in zip(ids, ids[1:]))
        ref_img, ref = apply_sequence(
            data["image"],
            ids,
            ts,
            targets={"mask": data["mask"], "masks": data["masks"]},
            rng=np.random.default_rng(lp["tf_seed"]),
        )
        assert np.array_equal(out["image"], ref_img)
        assert np.array_equal(out["mask"], ref["mask"]), f"{lp['tf_ids_str']}"
        assert all(np.array_equal(a, b) for a, b in zip(out["masks"], ref["masks"]))
    assert seen_noise_then_elastic


def test_respects_p(geo_policy_path: str) -> None:
    img = smooth_image(0)
    never = A.Compose([LearnedPolicyTransform(geo_policy_path, p=0.0)])
    t0 = never.transforms[0]
    for _ in range(30):
        assert np.array_equal(never(image=img)["image"], img)
        assert t0.last_params == {"applied": False}
    rotations = MeanFieldPolicy(TFSet(["rotate(+20)", "zoom(1.15)", "shear_x(+0.2)"]), seq_len=2)
    half = A.Compose([LearnedPolicyTransform(rotations, p=0.5)], seed=3)
    changed = [not np.array_equal(half(image=img)["image"], img) for _ in range(300)]
    assert 0.4 <= np.mean(changed) <= 0.6


def test_to_dict_from_dict_round_trip(geo_policy_path: str) -> None:
    data = detection_data()
    pipeline = detection_pipeline(LearnedPolicyTransform(geo_policy_path, p=0.9, seed=11))
    text = json.dumps(A.to_dict(pipeline))
    restored = A.from_dict(json.loads(text))
    t = restored.transforms[0]
    assert isinstance(t, LearnedPolicyTransform) and t.p == 0.9 and t.source == geo_policy_path
    assert t.tfset == pipeline.transforms[0].tfset
    for _ in range(5):
        a, b = pipeline(**data), restored(**data)
        assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["mask"], b["mask"])
        np.testing.assert_allclose(a["bboxes"], b["bboxes"])


def test_to_dict_from_dict_with_a_pretrained_policy() -> None:
    pipeline = A.Compose([LearnedPolicyTransform.from_pretrained("mnist-lstm", p=1.0, seed=4)])
    spec = json.loads(json.dumps(A.to_dict(pipeline)))
    assert spec["transform"]["transforms"][0]["policy"] == "pretrained:mnist-lstm"
    restored = A.from_dict(spec)
    img = smooth_image(0, h=28, w=28, channels=1)[..., 0]
    for _ in range(3):
        assert np.array_equal(pipeline(image=img)["image"], restored(image=img)["image"])


def test_to_dict_of_in_memory_policy_fails_clearly(geo_policy: MeanFieldPolicy) -> None:
    with pytest.raises(ValueError, match=r"in-memory policy.*policy\.save"):
        A.to_dict(A.Compose([LearnedPolicyTransform(geo_policy)]))


@pytest.mark.parametrize("source", ["path", "object"])
def test_replay_compose(source: str, geo_policy: MeanFieldPolicy, geo_policy_path: str) -> None:
    policy = geo_policy_path if source == "path" else geo_policy
    replay = A.ReplayCompose([LearnedPolicyTransform(policy, p=1.0)])
    img, other = smooth_image(0), smooth_image(5)
    for _ in range(4):
        first = replay(image=img, mask=rect_mask())
        again = A.ReplayCompose.replay(first["replay"], image=img, mask=rect_mask())
        assert np.array_equal(again["image"], first["image"]) and np.array_equal(again["mask"], first["mask"])
        moved = A.ReplayCompose.replay(first["replay"], image=other)["image"]
        params = first["replay"]["transforms"][0]["params"]
        ref = apply_sequence(
            other, list(params["tf_ids"]), geo_policy.tfset, rng=np.random.default_rng(params["tf_seed"])
        )
        assert np.array_equal(moved, ref)


def test_compose_seed_gives_identical_outputs(geo_policy_path: str) -> None:
    img = smooth_image(0)

    def run(seed: int) -> list[np.ndarray]:
        pipeline = A.Compose([LearnedPolicyTransform(geo_policy_path, p=0.7), A.HorizontalFlip(p=0.5)], seed=seed)
        return [pipeline(image=img)["image"] for _ in range(8)]

    a, b, c = run(137), run(137), run(138)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_a_compose_random_state_still_gives_ranks_their_own_streams(cifar_policy, monkeypatch) -> None:
    import random

    def ids_on(rank: int) -> np.ndarray:
        monkeypatch.setenv("RANK", str(rank))
        t = LearnedPolicyTransform(cifar_policy, p=1.0)
        pipeline = A.Compose([t])
        pipeline.set_random_state(np.random.default_rng(3), random.Random(3))
        pipeline(image=np.full((16, 16, 3), 128, np.uint8))
        return np.asarray(t.last_params["tf_ids"])

    assert not np.array_equal(ids_on(0), ids_on(1))
    assert np.array_equal(ids_on(1), ids_on(1))


# Keypoints with an angle (degrees here; radians inside Albumentations 2) and a scale, one row per format column
# order. Angles 0 and 90 sit on the axes, where a sign error or a wrap past 360 shows.
ORIENTED = [(21.0, 6.0, 30.0, 2.0), (5.0, 20.0, 200.0, 1.5), (14.0, 27.0, 0.0, 0.5), (27.0, 13.0, 90.0, 3.0)]
KEYPOINT_FORMATS = ["xya", "xys", "xyas", "xysa"]


def oriented_keypoints(fmt: str) -> list[list[float]]:
    cols = {"x": 0, "y": 1, "a": 2, "s": 3}
    return [[row[cols[c]] for c in fmt] for row in ORIENTED]


def keypoint_pipeline(t: A.BasicTransform, fmt: str) -> A.Compose:
    return A.Compose([t], keypoint_params=A.KeypointParams(format=fmt, remove_invisible=False))


def single_tf(tf_id: str) -> LearnedPolicyTransform:
    return LearnedPolicyTransform(MeanFieldPolicy(TFSet([tf_id]), seq_len=1), p=1.0, seed=0)


class QuarterTurn(A.RandomRotate90):
    """``A.RandomRotate90`` always turning once counter-clockwise, as ``rotate(+90)`` does."""

    def get_params(self) -> dict[str, int]:
        return {"factor": 1}


def assert_keypoints_close(ours: object, theirs: object, fmt: str) -> None:
    a, b = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert a.shape == b.shape
    for i, c in enumerate(fmt):
        if c == "a":
            turn = (a[:, i] - b[:, i] + 180.0) % 360.0 - 180.0
            np.testing.assert_allclose(turn, 0.0, atol=1e-3, err_msg=f"angles {a[:, i]} vs {b[:, i]}")
            assert ((a[:, i] >= 0.0) & (a[:, i] < 360.0)).all(), a[:, i]
        else:
            np.testing.assert_allclose(a[:, i], b[:, i], atol=1e-4, err_msg=f"column {c!r}")


@pytest.mark.parametrize("fmt", KEYPOINT_FORMATS)
@pytest.mark.parametrize(
    ("tf_id", "theirs"),
    [
        ("hflip", A.HorizontalFlip(p=1.0)),
        ("vflip", A.VerticalFlip(p=1.0)),
        ("rotate(+90)", QuarterTurn(p=1.0)),
        ("zoom(1.25)", A.Affine(scale=1.25, p=1.0)),
        ("zoom(0.8)", A.Affine(scale=0.8, p=1.0)),
        ("translate_x(+0.25)", A.Affine(translate_percent={"x": 0.25, "y": 0.0}, p=1.0)),
    ],
    ids=lambda v: v if isinstance(v, str) else type(v).__name__,
)
def test_keypoint_angle_and_scale_match_albumentations(tf_id: str, theirs: A.BasicTransform, fmt: str) -> None:
    image = scene()
    data = {"image": image, "keypoints": oriented_keypoints(fmt)}
    ours = keypoint_pipeline(single_tf(tf_id), fmt)(**data)["keypoints"]
    assert_keypoints_close(ours, keypoint_pipeline(theirs, fmt)(**data)["keypoints"], fmt)


@pytest.mark.parametrize("fmt", ["xyas", "xysa"])
def test_keypoint_scale_of_a_shear_matches_albumentations(fmt: str) -> None:
    """A shear keeps areas, so scales stay (A.Affine's angle under a shear is only its rotation part: not compared)."""
    data = {"image": scene(), "keypoints": oriented_keypoints(fmt)}
    ours = np.asarray(keypoint_pipeline(single_tf("shear_y(+0.3)"), fmt)(**data)["keypoints"])
    theirs = np.asarray(keypoint_pipeline(A.Affine(shear={"x": 0.0, "y": -16.7}, p=1.0), fmt)(**data)["keypoints"])
    s = fmt.index("s")
    np.testing.assert_allclose(ours[:, s], theirs[:, s], atol=1e-4)
    np.testing.assert_allclose(ours[:, :2], theirs[:, :2], atol=0.1)


def arrow_scene(base: tuple[float, float], angle: float, length: float) -> np.ndarray:
    """(48, 48, 3) uint8: a Gaussian dot at ``base`` in green and one ``length`` px along ``angle`` (degrees,
    y axis down) in blue."""
    tip = (base[0] + length * np.cos(np.radians(angle)), base[1] + length * np.sin(np.radians(angle)))
    ys, xs = np.mgrid[0:48, 0:48].astype(np.float64)
    img = np.zeros((48, 48, 3), np.uint8)
    for channel, (cx, cy) in ((1, base), (2, tip)):
        img[..., channel] = np.rint(255.0 * np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * 1.2**2)))
    return img


@pytest.mark.parametrize("angle", [20.0, 135.0, 270.0])
@pytest.mark.parametrize(
    "seq",
    [["rotate(+30)"], ["rotate(-15)"], ["shear_x(+0.3)"], ["zoom(1.25)"], ["hflip", "rotate(+30)"]],
    ids=lambda s: "+".join(s),
)
def test_keypoint_angle_points_where_the_image_content_went(seq: list[str], angle: float) -> None:
    """The angle keeps pointing from the keypoint's dot to a second dot drawn along it (y axis down, as
    A.HorizontalFlip and A.RandomRotate90 turn angles). Affine maps only: a warp bends the line between the dots."""
    base, length = (22.0, 25.0), 9.0
    t = LearnedPolicyTransform(MeanFieldPolicy(TFSet(seq), seq_len=len(seq)), p=1.0, seed=0)
    pipeline = keypoint_pipeline(t, "xyas")
    for _ in range(3):  # sequences of two TFs draw both orders, or one TF twice
        out = pipeline(image=arrow_scene(base, angle, length), keypoints=[[*base, angle, 2.0]])
        what = t.last_params["tf_ids_str"]
        x, y, a, _ = (float(v) for v in out["keypoints"][0])
        from_dot, to_dot = dot_centre(out["image"][..., 1]), dot_centre(out["image"][..., 2])
        assert from_dot is not None and to_dot is not None, what
        assert np.hypot(from_dot[0] - x, from_dot[1] - y) < 0.75, what
        seen = np.degrees(np.arctan2(to_dot[1] - from_dot[1], to_dot[0] - from_dot[0]))
        assert abs((a - seen + 180.0) % 360.0 - 180.0) < 4.0, f"{what}: angle {a:.1f}, the dots point at {seen:.1f}"


@pytest.mark.parametrize(
    ("tf_id", "step", "tol"),
    [
        ("swirl(+0.6)", 1e-4, 1.0),  # smooth: its derivative
        ("swirl(-0.6)", 1e-4, 1.0),
        # An elastic field bends within a pixel, so the direction depends on the step: compare with a 1-px one.
        ("elastic(0.5)", 1.0, 3.0),
    ],
)
def test_keypoint_angle_under_a_warp_is_its_local_direction(tf_id: str, step: float, tol: float) -> None:
    t = single_tf(tf_id)
    keypoints = [list(row) for row in ORIENTED]
    out = np.asarray(keypoint_pipeline(t, "xyas")(image=scene(), keypoints=keypoints)["keypoints"], np.float64)
    a = np.radians(np.asarray(ORIENTED)[:, 2])
    base = np.asarray(ORIENTED)[:, :2]
    pts = np.concatenate([base, base + step * np.stack([np.cos(a), np.sin(a)], axis=1)])
    rng = np.random.default_rng(t.last_params["tf_seed"])
    _, moved = apply_sequence(scene(), [tf_id], targets={"keypoints": pts}, rng=rng)
    d = moved["keypoints"][len(base) :] - moved["keypoints"][: len(base)]
    np.testing.assert_allclose(out[:, :2], moved["keypoints"][: len(base)], atol=1e-4)
    turn = (out[:, 2] - np.degrees(np.arctan2(d[:, 1], d[:, 0])) + 180.0) % 360.0 - 180.0
    np.testing.assert_allclose(turn, 0.0, atol=tol)


@pytest.mark.parametrize("fmt", KEYPOINT_FORMATS)
def test_intensity_tfs_leave_keypoint_angle_and_scale_alone(fmt: str) -> None:
    ts = TFSet(["brightness(1.5)", "contrast(0.5)", "hue(+0.15)", "blur(1)", "noise(0.04)", "cutout(0.25)"])
    t = LearnedPolicyTransform(MeanFieldPolicy(ts, seq_len=3), p=1.0, seed=0)
    data = {"image": scene(), "keypoints": oriented_keypoints(fmt)}
    pipeline = keypoint_pipeline(t, fmt)
    plain = keypoint_pipeline(A.NoOp(p=1.0), fmt)(**data)["keypoints"]
    for _ in range(4):
        assert np.array_equal(pipeline(**data)["keypoints"], plain)


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_float16_and_float64_images_come_back_in_their_dtype(dtype) -> None:
    # As A.HorizontalFlip takes them, and as the positional call does: the TFs run in float32.
    policy = MeanFieldPolicy(TFSet(["rotate(+20)", "zoom(1.15)"]), seq_len=2)
    image = smooth_image(0).astype(np.float32) / 255.0
    pipe = A.Compose([LearnedPolicyTransform(policy, p=1.0)], seed=3)
    reference = A.Compose([LearnedPolicyTransform(policy, p=1.0)], seed=3)(image=image)["image"]
    out = pipe(image=image.astype(dtype))["image"]
    assert out.dtype == dtype and out.shape == image.shape
    np.testing.assert_allclose(out.astype(np.float32), reference, atol=2e-3)


def test_strict_flag_of_albumentations_2_is_accepted() -> None:
    policy = MeanFieldPolicy(TFSet(["rotate(+20)"]), seq_len=1)
    assert LearnedPolicyTransform(policy, strict=True).strict is True
    assert A.Compose([LearnedPolicyTransform(policy, strict=False)])(image=smooth_image(0))["image"].shape == (
        smooth_image(0).shape
    )
    with pytest.raises(TypeError, match="strict must be True or False"):
        LearnedPolicyTransform(policy, strict="yes")


@pytest.mark.parametrize("fmt", ["pascal_voc", "coco", "yolo"])
@pytest.mark.parametrize("min_visibility", [0.0, 0.5])
def test_min_visibility_filters_boxes_as_after_a_affine(fmt: str, min_visibility: float) -> None:
    """Boxes come back unclipped, so Compose measures how much of each left the image (as after A.Affine)."""
    h, w = 40, 60  # translate_x(+0.25) moves 15 px right: 5 of the first box's 18 px stay on the image
    voc = np.array([[40.0, 5.0, 58.0, 20.0], [5.0, 5.0, 15.0, 15.0]])
    boxes = {
        "pascal_voc": voc,
        "coco": np.c_[voc[:, :2], voc[:, 2:] - voc[:, :2]],
        "yolo": np.c_[(voc[:, :2] + voc[:, 2:]) / 2, voc[:, 2:] - voc[:, :2]] / [w, h, w, h],
    }[fmt]

    def run(t: A.BasicTransform) -> dict:
        params = A.BboxParams(format=fmt, label_fields=["labels"], min_visibility=min_visibility)
        return A.Compose([t], bbox_params=params, seed=0)(
            image=np.zeros((h, w, 3), np.uint8), bboxes=boxes, labels=[1, 2]
        )

    ours = run(LearnedPolicyTransform(UniformPolicy(["translate_x(+0.25)"], seq_len=1)))
    theirs = run(A.Affine(translate_px={"x": 15, "y": 0}, p=1.0))
    assert list(ours["labels"]) == list(theirs["labels"]) == ([1, 2] if min_visibility == 0.0 else [2])
    np.testing.assert_allclose(np.asarray(ours["bboxes"]), np.asarray(theirs["bboxes"]), atol=1e-4)


@pytest.mark.parametrize(
    ("image", "error"),
    [(np.zeros((8, 8, 3), np.int64), TypeError), (np.full((8, 8, 3), np.nan, np.float32), ValueError)],
)
def test_a_bad_image_fails_whatever_p_draws(image: np.ndarray, error: type) -> None:
    pipeline = A.Compose([LearnedPolicyTransform(UniformPolicy(["rotate(+5)"], seq_len=1), p=0.5)], seed=0)
    for _ in range(8):  # at p = 0.5 the transform skips about half the calls: each must still refuse the image
        with pytest.raises(error):
            pipeline(image=image)
    skipped = A.Compose([LearnedPolicyTransform(UniformPolicy(["rotate(+5)"], seq_len=1), p=0.0)], seed=0)
    with pytest.raises(error):
        skipped(image=image)
    second = A.Compose(
        [LearnedPolicyTransform(UniformPolicy(["rotate(+5)"], seq_len=1), p=0.0)],
        additional_targets={"image2": "image"},
        seed=0,
    )
    with pytest.raises(error):
        second(image=np.zeros((8, 8, 3), np.uint8), image2=image)


def test_a_grey_image2_gets_the_draws_of_the_rgb_image() -> None:
    """additional_targets with another channel count (RGB and depth): noise draws alike for both, so the elastic
    field and the cutout after it land alike, as Albumentations' own ElasticTransform and CoarseDropout do."""
    policy = MeanFieldPolicy(TFSet(["noise(0.1)", "elastic(60)", "cutout(0.25)"]), seq_len=3)
    compose = A.Compose([LearnedPolicyTransform(policy)], additional_targets={"image2": "image"}, seed=0)
    rgb = np.zeros((48, 48, 3), np.uint8)
    rgb[10:38, 14:30] = 255
    for _ in range(8):
        out = compose(image=rgb, image2=rgb[..., :1].copy())
        assert out["image2"].shape == (48, 48, 1)
        assert ((out["image"][..., 0] > 127) == (out["image2"][..., 0] > 127)).mean() > 0.99
