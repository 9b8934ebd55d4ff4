"""LearnedPolicyTransform inside torchvision v1 and v2 pipelines; v2 targets move with the image."""

from __future__ import annotations

import copy
import inspect
import pickle
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils._pytree import tree_flatten
from torchvision import transforms, tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF
from transform_helpers import (
    DOT,
    RECT,
    H,
    W,
    check_box_encloses,
    check_keypoint,
    check_mask,
    rect_mask,
    scene,
    smooth_image,
)

from learned_augment.ops import TFSet
from learned_augment.policy import LSTMPolicy, MeanFieldPolicy
from learned_augment.transforms import LearnedPolicyTransform, RefineSynthetic

N_DRAWS = 16


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_v1_compose_with_to_tensor(mode: str, geo_policy: MeanFieldPolicy) -> None:
    t = LearnedPolicyTransform(geo_policy, p=1.0, seed=0)
    pipeline = transforms.Compose([t, transforms.ToTensor()])
    img = Image.fromarray(smooth_image(0)).convert(mode)
    out = pipeline(img)
    assert out.dtype == torch.float32 and out.shape == (1 if mode == "L" else 3, H, W)
    assert torch.equal(out, transforms.ToTensor()(t.replay(img, t.last_params)))
    assert not torch.equal(out, transforms.ToTensor()(img))


def test_v1_compose_on_tensors(geo_policy: MeanFieldPolicy) -> None:
    t = LearnedPolicyTransform(geo_policy, p=1.0, seed=0)
    pipeline = transforms.Compose([transforms.PILToTensor(), t, transforms.ConvertImageDtype(torch.float32)])
    out = pipeline(Image.fromarray(smooth_image(0)))
    assert out.dtype == torch.float32 and out.shape == (3, H, W)


def _module_transforms(geo_policy: MeanFieldPolicy) -> dict[str, Any]:
    return {
        "policy": LearnedPolicyTransform(geo_policy, p=1.0, seed=0),
        "refiner": RefineSynthetic("pretrained:digits-synthetic-to-mnist"),
    }


@pytest.mark.parametrize("kind", ["policy", "refiner"])
def test_is_a_module_without_parameters_as_torchvision_transforms_are(kind: str, geo_policy: MeanFieldPolicy) -> None:
    t = _module_transforms(geo_policy)[kind]
    x = torch.from_numpy(smooth_image(0)[:28, :28, :1]).permute(2, 0, 1).contiguous()
    for copy_ in (t, copy.deepcopy(t), pickle.loads(pickle.dumps(t))):
        assert isinstance(copy_, torch.nn.Module)
        # The wrapped policy or refiner is held, not registered: .to(), .train() and state_dict() skip it.
        assert dict(copy_.named_modules()) == {"": copy_} and not copy_.state_dict()
        seen: list[torch.nn.Module] = []
        torch.nn.Sequential(copy_).apply(seen.append)  # torch's recursive apply, not the image kernel
        assert seen[0] is copy_
    t.train()
    t.to(torch.float64)
    wrapped = t.policy_obj if kind == "policy" else t.refiner_obj.synthetic_to_real[0]
    assert not wrapped.training and next(wrapped.parameters()).dtype == torch.float32
    fresh = _module_transforms(geo_policy)[kind]  # draws in step with t: the calls above drew nothing
    for call in (t.forward, torch.nn.Sequential(t)):
        assert torch.equal(call(x), fresh(x))


def test_module_pipelines_draw_as_torchvision_ones(geo_policy: MeanFieldPolicy) -> None:
    t = LearnedPolicyTransform(geo_policy, p=1.0)
    x = torch.from_numpy(smooth_image(0)).permute(2, 0, 1).contiguous()

    def run(pipeline: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        torch.manual_seed(3)  # seed=None: the draws follow PyTorch's global generator
        return pipeline(x)

    alone = run(t)
    assert not torch.equal(alone, x)
    assert torch.equal(run(t.forward), alone) and torch.equal(run(torch.nn.Sequential(t)), alone)
    # Both draw one number from the global generator before the policy does.
    after_flip = run(torch.nn.Sequential(v2.RandomHorizontalFlip(p=0.0), t))
    assert torch.equal(run(v2.RandomApply(torch.nn.ModuleList([t]), p=1.0)), after_flip)
    assert not torch.equal(after_flip, x)


def _sample(fmt: str) -> tuple:
    img = tv_tensors.Image(torch.from_numpy(scene()).permute(2, 0, 1).contiguous())
    xyxy = tv_tensors.BoundingBoxes(torch.tensor([RECT]), format="XYXY", canvas_size=(H, W))
    boxes = TF.convert_bounding_box_format(xyxy, new_format=getattr(tv_tensors.BoundingBoxFormat, fmt))
    masks = tv_tensors.Mask(torch.stack([torch.from_numpy(rect_mask()), torch.from_numpy(scene()[..., 1] > 128)]))
    keypoints = tv_tensors.KeyPoints(torch.tensor([DOT]), canvas_size=(H, W))
    labels = torch.tensor([3])
    return img, {"boxes": boxes, "masks": masks, "keypoints": keypoints, "labels": labels}


@pytest.mark.parametrize("fmt", ["XYXY", "XYWH", "CXCYWH"])
def test_v2_targets_move_with_the_image(fmt: str, geo_policy: MeanFieldPolicy) -> None:
    t = LearnedPolicyTransform(geo_policy, p=1.0, seed=1)
    pipeline = v2.Compose([t, v2.ToDtype(torch.float32, scale=True)])
    img, target = _sample(fmt)
    applied = set()
    for k in range(N_DRAWS):
        out_img, out = pipeline((img, target))
        what = f"draw {k} {t.last_params['tf_ids_str']}"
        applied.update(t.last_params["tf_ids_str"])
        assert type(out_img) is tv_tensors.Image and out_img.dtype == torch.float32 and out_img.shape == img.shape
        assert type(out["boxes"]) is tv_tensors.BoundingBoxes and out["boxes"].format == target["boxes"].format
        assert out["boxes"].canvas_size == (H, W) and out["boxes"].shape == (1, 4)
        assert type(out["masks"]) is tv_tensors.Mask and out["masks"].shape == (2, H, W)
        assert out["masks"].dtype == target["masks"].dtype
        assert type(out["keypoints"]) is tv_tensors.KeyPoints and out["keypoints"].shape == (1, 2)
        assert out["labels"] is target["labels"]
        red = out_img[0].numpy() * 255.0
        box = TF.convert_bounding_box_format(out["boxes"], new_format=tv_tensors.BoundingBoxFormat.XYXY)[0].numpy()
        check_box_encloses(red, box, what)
        check_mask(out["masks"][0].numpy(), red, what)
    assert len(applied) >= 8, "the draws should cover most of the TF set"
    assert torch.equal(img, _sample(fmt)[0]), "the input was modified in place"


def test_v2_keypoints_follow_the_dot(geo_policy: MeanFieldPolicy) -> None:
    t = LearnedPolicyTransform(geo_policy, p=1.0, seed=2)
    img, target = _sample("XYXY")
    checked = 0
    for _ in range(N_DRAWS):
        out_img, out = t((img, target))
        checked += check_keypoint(out_img[1].numpy(), out["keypoints"][0].numpy(), f"{t.last_params['tf_ids_str']}")
    assert checked >= N_DRAWS // 2


@pytest.mark.parametrize(
    ("tf_id", "expect", "torchvision_op"),
    [
        ("hflip", (W - 1 - 5, 9), TF.horizontal_flip),
        ("vflip", (5, H - 1 - 9), TF.vertical_flip),
        # Counter-clockwise about the centre of the pixel grid, as the image turns. (torchvision 0.29's own
        # TF.rotate puts this keypoint at (9, 27), one pixel off its rotated image, so it is not the reference.)
        ("rotate(+90)", (9, 26), None),
    ],
)
def test_v2_keypoints_are_pixel_indices(tf_id: str, expect: tuple[int, int], torchvision_op) -> None:
    """A keypoint on a single bright pixel lands exactly on that pixel's new index (hflip: x -> W - 1 - x)."""
    img = torch.zeros(1, H, W, dtype=torch.uint8)
    img[0, 9, 5] = 255
    kp = tv_tensors.KeyPoints(torch.tensor([[5.0, 9.0]]), canvas_size=(H, W))
    t = LearnedPolicyTransform(MeanFieldPolicy(TFSet([tf_id]), seq_len=1), p=1.0)
    out_img, out_kp = t(tv_tensors.Image(img), kp)
    assert torch.nonzero(out_img[0] > 128).tolist() == [[expect[1], expect[0]]]
    assert out_kp[0].tolist() == pytest.approx(list(expect), abs=1e-4)
    if torchvision_op is not None:
        assert out_kp[0].tolist() == pytest.approx(torchvision_op(kp)[0].tolist(), abs=1e-4)


@pytest.mark.parametrize("tf_id", ["hflip", "vflip"])
def test_v2_flips_match_torchvision_on_every_target(tf_id: str) -> None:
    # Not square, and nothing symmetric about the image's axes, so swapped sizes or a wrong convention show.
    pad = ((2, 5), (3, 13))
    h, w = H + 7, W + 16
    img = tv_tensors.Image(torch.from_numpy(np.pad(scene(), (*pad, (0, 0)))).permute(2, 0, 1).contiguous())
    boxes = tv_tensors.BoundingBoxes(torch.tensor([RECT, (4.0, 10.0, 12.0, 20.0)]), format="XYXY", canvas_size=(h, w))
    mask = tv_tensors.Mask(torch.from_numpy(np.pad(rect_mask(), pad)))
    keypoints = tv_tensors.KeyPoints(torch.tensor([DOT, (5.0, 30.0)]), canvas_size=(h, w))
    t = LearnedPolicyTransform(MeanFieldPolicy(TFSet([tf_id]), seq_len=1), p=1.0)
    ours = t(img, boxes, mask, keypoints)
    flip = v2.RandomHorizontalFlip(p=1.0) if tf_id == "hflip" else v2.RandomVerticalFlip(p=1.0)
    theirs = flip(img, boxes, mask, keypoints)
    for a, b in zip(ours, theirs):
        assert type(a) is type(b) and torch.equal(a, b)


def test_v2_positional_sample_and_plain_tensor_image(geo_policy: MeanFieldPolicy) -> None:
    t = LearnedPolicyTransform(geo_policy, p=1.0, seed=4)
    pipeline = v2.Compose([t])
    img = torch.from_numpy(scene()).permute(2, 0, 1).contiguous()
    boxes = tv_tensors.BoundingBoxes(torch.tensor([RECT]), format="XYXY", canvas_size=(H, W))
    out_img, out_boxes, label = pipeline(img, boxes, 7)
    assert type(out_img) is torch.Tensor and type(out_boxes) is tv_tensors.BoundingBoxes and label == 7
    check_box_encloses(out_img[0].numpy().astype(np.float64), out_boxes[0].numpy(), str(t.last_params))
    replayed = t.replay((img, boxes), t.last_params)
    assert torch.equal(replayed[0], out_img) and torch.equal(replayed[1], out_boxes)


def test_v2_unsupported_targets_fail_clearly(geo_policy: MeanFieldPolicy) -> None:
    t = LearnedPolicyTransform(geo_policy, p=1.0, seed=0)
    boxes = tv_tensors.BoundingBoxes(torch.tensor([RECT]), format="XYXY", canvas_size=(H, W))
    batch = torch.zeros(2, 3, H, W, dtype=torch.uint8)
    with pytest.raises(ValueError, match="batched"):
        t(batch, boxes)
    rotated = getattr(tv_tensors.BoundingBoxFormat, "XYWHR", None)
    if rotated is not None:
        rboxes = tv_tensors.BoundingBoxes(
            torch.tensor([[9.0, 10.0, 14.0, 10.0, 30.0]]), format=rotated, canvas_size=(H, W)
        )
        with pytest.raises(NotImplementedError, match="XYWHR"):
            t(torch.zeros(3, H, W, dtype=torch.uint8), rboxes)


# ------------------------------------------------------------------------------------------------ several images


def _tv_image(seed: int, w: int = W) -> tv_tensors.Image:
    return tv_tensors.Image(torch.from_numpy(smooth_image(seed, w=w)).permute(2, 0, 1).contiguous())


def _pil(seed: int) -> Image.Image:
    return Image.fromarray(smooth_image(seed))


def _plain(seed: int) -> torch.Tensor:
    return torch.from_numpy(smooth_image(seed)).permute(2, 0, 1).contiguous()


def _mask_and_boxes() -> tuple[tv_tensors.Mask, tv_tensors.BoundingBoxes]:
    mask = tv_tensors.Mask(torch.from_numpy(rect_mask()))
    return mask, tv_tensors.BoundingBoxes(torch.tensor([RECT]), format="XYXY", canvas_size=(H, W))


# Samples with several image-like leaves. v2's rule: every Image and PIL image is an image; plain tensors are images
# only when there is none, and then only the first one.
MULTI_IMAGE_SAMPLES: dict[str, Callable[[], Any]] = {
    "dict of two Images": lambda: {"left": _tv_image(0), "right": _tv_image(1)},
    "list of two PIL images": lambda: [_pil(0), _pil(1)],
    "two Images with a mask and boxes": lambda: (_tv_image(0), _tv_image(1), *_mask_and_boxes()),
    "nested views and a label": lambda: {"views": [_tv_image(0), _tv_image(1)], "label": 3},
    "PIL image and Image": lambda: (_pil(0), _tv_image(1)),
    "Image and a plain tensor": lambda: (_tv_image(0), _plain(1)),
    "two plain tensors": lambda: (_plain(0), _plain(1)),
}


@pytest.mark.parametrize("name", list(MULTI_IMAGE_SAMPLES))
def test_v2_every_image_of_a_sample_is_transformed_as_v2_does(name: str) -> None:
    t = LearnedPolicyTransform(MeanFieldPolicy(TFSet(["hflip"]), seq_len=1), p=1.0)
    sample = MULTI_IMAGE_SAMPLES[name]()
    ours, ours_spec = tree_flatten(t(sample))
    theirs, theirs_spec = tree_flatten(v2.RandomHorizontalFlip(p=1.0)(sample))
    assert ours_spec == theirs_spec
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert type(a) is type(b), f"leaf {i}"
        if isinstance(a, Image.Image):
            assert a.mode == b.mode and np.array_equal(np.asarray(a), np.asarray(b)), f"leaf {i}"
        elif isinstance(a, torch.Tensor):
            assert torch.equal(a, b), f"leaf {i}"
        else:
            assert a == b, f"leaf {i}"


RANDOM_IDS = ["elastic(1.5)", "noise(0.04)", "cutout(0.25)", "rotate(+20)", "hue(+0.1)", "hflip"]
"""TFs that draw random numbers (elastic, noise, cutout) among deterministic ones."""


@pytest.mark.parametrize("kind", ["Image", "PIL"])
def test_v2_images_of_a_sample_share_one_draw(kind: str) -> None:
    """Same sequence and same random draws: each image comes out as the replay of the call's params on it alone,
    also the one whose targets moved with it."""
    t = LearnedPolicyTransform(MeanFieldPolicy(TFSet(RANDOM_IDS), seq_len=3), p=1.0, seed=3)
    make = _tv_image if kind == "Image" else _pil
    a, b = make(0), make(1)
    mask, boxes = _mask_and_boxes()

    def pixels(x: Any) -> np.ndarray:
        return np.asarray(x) if isinstance(x, Image.Image) else x.numpy()

    for _ in range(N_DRAWS):
        out = t({"first": a, "twin": a.copy() if kind == "PIL" else a.clone(), "other": b, "mask": mask, "box": boxes})
        params = t.last_params
        assert np.array_equal(pixels(out["first"]), pixels(out["twin"])), params["tf_ids_str"]
        assert np.array_equal(pixels(out["first"]), pixels(t.replay(a, params))), params["tf_ids_str"]
        assert np.array_equal(pixels(out["other"]), pixels(t.replay(b, params))), params["tf_ids_str"]
        assert np.array_equal(out["mask"].numpy(), t.replay((a, mask), params)[1].numpy())


def test_v2_batched_images_of_a_sample_share_the_sequences(cifar_policy: LSTMPolicy) -> None:
    pytest.importorskip("learned_augment.ops.batch")
    t = LearnedPolicyTransform(cifar_policy, p=0.5, seed=1)
    x = torch.from_numpy(np.stack([smooth_image(s) for s in range(8)])).permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy(np.stack([smooth_image(s + 8) for s in range(8)])).permute(0, 3, 1, 2).contiguous()
    extra = torch.zeros(8, 2)
    out = t({"x": tv_tensors.Image(x), "twin": tv_tensors.Image(x.clone()), "y": tv_tensors.Image(y), "extra": extra})
    params = t.last_params
    assert 0 < sum(params["applied"]) < 8
    assert torch.equal(out["x"], out["twin"])
    assert torch.equal(out["x"], t.replay(x, params)) and torch.equal(out["y"], t.replay(y, params))
    assert out["extra"] is extra, "a plain tensor next to Images is not an image (v2's rule)"


@pytest.mark.parametrize(
    ("make", "exc", "match"),
    [
        (lambda: {"a": _tv_image(0), "b": _tv_image(1, w=W + 2)}, ValueError, "same height and width"),
        (lambda: [_pil(0), Image.fromarray(smooth_image(1, w=W + 2))], ValueError, "same height and width"),
        (lambda: (_tv_image(0), tv_tensors.Image(torch.stack([_plain(1)] * 2))), ValueError, "batch"),
        (lambda: (_tv_image(0), tv_tensors.Video(torch.stack([_plain(1)] * 2))), TypeError, "Video"),
    ],
    ids=["Image sizes differ", "PIL sizes differ", "batch and single image", "Video"],
)
def test_v2_samples_the_images_cannot_share_a_draw_fail_clearly(
    make: Callable[[], Any], exc: type, match: str, geo_policy: MeanFieldPolicy
) -> None:
    # p = 0 too: the check does not depend on the draw.
    for p in (1.0, 0.0):
        with pytest.raises(exc, match=match):
            LearnedPolicyTransform(geo_policy, p=p, seed=0)(make())


def test_v2_mask_outputs_are_contiguous(geo_policy: MeanFieldPolicy) -> None:
    t = LearnedPolicyTransform(geo_policy, p=1.0, seed=0)
    img, target = _sample("XYXY")
    _, out = t((img, target))
    assert out["masks"].shape == (2, H, W) and out["masks"].is_contiguous()
    out["masks"].view(-1)


@pytest.mark.parametrize("fmt", ["XYXY", "XYWH", "CXCYWH"])
def test_boxes_keep_their_metadata(fmt: str) -> None:
    # Every attribute of the input boxes carries over, as v2's transforms keep them (clamping_mode since 0.23).
    new = inspect.signature(tv_tensors.BoundingBoxes.__new__).parameters
    kwargs = {"clamping_mode": "hard"} if "clamping_mode" in new else {}
    xyxy = tv_tensors.BoundingBoxes(torch.tensor([RECT]), format="XYXY", canvas_size=(H, W), **kwargs)
    boxes = TF.convert_bounding_box_format(xyxy, new_format=tv_tensors.BoundingBoxFormat[fmt])
    t = LearnedPolicyTransform(MeanFieldPolicy(TFSet(["rotate(+15)", "zoom(1.1)"]), seq_len=2), p=1.0, seed=0)
    _, out = t((torch.from_numpy(scene()).permute(2, 0, 1), boxes))
    assert out.format == boxes.format and out.canvas_size == boxes.canvas_size and out.dtype == boxes.dtype
    if kwargs:
        assert out.clamping_mode == "hard"


@pytest.mark.skipif(
    "clamping_mode" not in inspect.signature(tv_tensors.BoundingBoxes.__new__).parameters,
    reason="clamping_mode arrived in torchvision 0.23",
)
@pytest.mark.parametrize("mode", ["soft", "hard", None])
def test_boxes_are_clamped_as_their_clamping_mode_says(mode: str | None) -> None:
    """As torchvision's own affine: clamped to the canvas, or not at all when ``clamping_mode=None``."""
    box = [[40.0, 5.0, 58.0, 20.0]]  # translate_x(+0.25) moves it 15 px right, past the 60-px canvas
    boxes = tv_tensors.BoundingBoxes(box, format="XYXY", canvas_size=(40, 60), clamping_mode=mode)
    t = LearnedPolicyTransform(MeanFieldPolicy(TFSet(["translate_x(+0.25)"]), seq_len=1))
    out = t({"image": tv_tensors.Image(torch.zeros(3, 40, 60, dtype=torch.uint8)), "boxes": boxes})["boxes"]
    theirs = TF.affine(boxes, angle=0.0, translate=[15, 0], scale=1.0, shear=[0.0, 0.0])
    assert out.clamping_mode == mode
    torch.testing.assert_close(out.as_subclass(torch.Tensor), theirs.as_subclass(torch.Tensor))
    assert out[0, 2].item() == (73.0 if mode is None else 60.0)


def test_a_mask_of_another_size_fails_whatever_p_draws(geo_policy: MeanFieldPolicy) -> None:
    image = tv_tensors.Image(torch.zeros(3, 40, 60, dtype=torch.uint8))
    mask = tv_tensors.Mask(torch.zeros(41, 60, dtype=torch.uint8))
    for p in (0.0, 1.0):
        with pytest.raises(ValueError, match=r"Mask of shape \(41, 60\) does not match the 40x60 image"):
            LearnedPolicyTransform(geo_policy, p=p, seed=0)((image, mask))


@pytest.mark.parametrize("kind", ["BoundingBoxes", "KeyPoints"])
def test_boxes_or_keypoints_on_another_canvas_fail_whatever_p_draws(kind: str, geo_policy: MeanFieldPolicy) -> None:
    """Coordinates on an 80x120 canvas would be moved in the 40x60 image's frame: refused, not silently wrong."""
    image = tv_tensors.Image(torch.zeros(3, 40, 60, dtype=torch.uint8))
    if kind == "BoundingBoxes":
        target = tv_tensors.BoundingBoxes([[1.0, 1.0, 5.0, 5.0]], format="XYXY", canvas_size=(80, 120))
    else:
        target = tv_tensors.KeyPoints([[3.0, 4.0]], canvas_size=(80, 120))
    for p in (0.0, 1.0):
        with pytest.raises(ValueError, match=rf"{kind} with canvas_size \(80, 120\) do not match the 40x60 image"):
            LearnedPolicyTransform(geo_policy, p=p, seed=0)({"image": image, "target": target})
    same = type(target)(target, canvas_size=(40, 60), **({"format": "XYXY"} if kind == "BoundingBoxes" else {}))
    out = LearnedPolicyTransform(geo_policy, p=1.0, seed=0)({"image": image, "target": same})
    assert type(out["target"]) is type(target) and tuple(out["target"].canvas_size) == (40, 60)


def test_a_call_without_input_is_one_line(geo_policy: MeanFieldPolicy) -> None:
    with pytest.raises(TypeError, match=r"LearnedPolicyTransform takes one input \(an image, a sample or your data\)"):
        LearnedPolicyTransform(geo_policy)()


def test_a_float_image_that_requires_grad_raises_no_torch_warning(geo_policy: MeanFieldPolicy) -> None:
    x = (torch.from_numpy(smooth_image(0)).permute(2, 0, 1).float() / 255).requires_grad_()
    t = LearnedPolicyTransform(geo_policy, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert t(x).shape == x.shape and t(x[None]).shape == (1, *x.shape)


@pytest.mark.parametrize("kind", ["policy", "refiner"])
def test_a_pickle_from_before_the_module_base_still_loads(kind: str, geo_policy: MeanFieldPolicy) -> None:
    t = _module_transforms(geo_policy)[kind]
    module_keys = set(torch.nn.Module().__dict__)
    old_state = {k: v for k, v in t.__getstate__().items() if k not in module_keys}  # as 0.1 pickled it
    restored = type(t).__new__(type(t))
    restored.__setstate__(old_state)
    restored.train()
    assert not restored.state_dict() and dict(restored.named_modules()) == {"": restored}
    x = torch.from_numpy(smooth_image(0)[:28, :28, :1]).permute(2, 0, 1).contiguous()
    assert torch.equal(restored(x), _module_transforms(geo_policy)[kind](x))


def test_several_boxes_and_keypoints_in_one_sample_move_as_each_would_alone(geo_policy: MeanFieldPolicy) -> None:
    """torchvision's transforms take any number of BoundingBoxes and KeyPoints in a sample; each moves as it would
    alone (same draw), keeping its format."""
    image = tv_tensors.Image(torch.from_numpy(smooth_image(0)).permute(2, 0, 1).contiguous())
    cars = tv_tensors.BoundingBoxes([[2.0, 3.0, 12.0, 14.0], [15.0, 4.0, 30.0, 9.0]], format="XYXY", canvas_size=(H, W))
    people = tv_tensors.BoundingBoxes([[16.0, 20.0, 6.0, 8.0]], format="CXCYWH", canvas_size=(H, W))
    sample: dict[str, Any] = {"image": image, "cars": cars, "people": people}
    has_keypoints = hasattr(tv_tensors, "KeyPoints")
    if has_keypoints:
        sample["eyes"] = tv_tensors.KeyPoints([[5.0, 6.0], [9.0, 6.0]], canvas_size=(H, W))
        sample["tips"] = tv_tensors.KeyPoints([[20.0, 25.0]], canvas_size=(H, W))
    together = LearnedPolicyTransform(geo_policy, p=1.0, seed=4)
    alone = {key: LearnedPolicyTransform(geo_policy, p=1.0, seed=4) for key in sample if key != "image"}
    for _ in range(6):
        out = together(sample)
        for key, t in alone.items():
            single = t({"image": image, key: sample[key]})[key]
            assert type(out[key]) is type(sample[key]) and out[key].shape == sample[key].shape
            torch.testing.assert_close(out[key].as_subclass(torch.Tensor), single.as_subclass(torch.Tensor))
        assert out["people"].format == tv_tensors.BoundingBoxFormat.CXCYWH


@pytest.mark.skipif(
    "clamping_mode" not in inspect.signature(tv_tensors.BoundingBoxes.__new__).parameters,
    reason="clamping_mode arrived in torchvision 0.23",
)
def test_boxes_with_different_clamping_modes_in_one_sample() -> None:
    box = [[40.0, 5.0, 58.0, 20.0]]  # translate_x(+0.25) moves it 15 px right, past the 60-px canvas
    free = tv_tensors.BoundingBoxes(box, format="XYXY", canvas_size=(40, 60), clamping_mode=None)
    hard = tv_tensors.BoundingBoxes(box, format="XYXY", canvas_size=(40, 60), clamping_mode="hard")
    t = LearnedPolicyTransform(MeanFieldPolicy(TFSet(["translate_x(+0.25)"]), seq_len=1))
    out = t({"image": tv_tensors.Image(torch.zeros(3, 40, 60, dtype=torch.uint8)), "free": free, "hard": hard})
    assert out["free"][0, 2].item() == 73.0 and out["hard"][0, 2].item() == 60.0
    assert out["free"].clamping_mode is None and out["hard"].clamping_mode == "hard"


@pytest.mark.skipif(
    "clamping_mode" not in inspect.signature(tv_tensors.BoundingBoxes.__new__).parameters,
    reason="clamping_mode arrived in torchvision 0.23",
)
def test_boxes_no_tf_moved_are_not_clamped_beside_unclamped_ones() -> None:
    box = [[40.0, 5.0, 70.0, 20.0]]  # already past the 60-px canvas; a colour TF does not move it
    free = tv_tensors.BoundingBoxes(box, format="XYXY", canvas_size=(40, 60), clamping_mode=None)
    hard = tv_tensors.BoundingBoxes(box, format="XYXY", canvas_size=(40, 60), clamping_mode="hard")
    t = LearnedPolicyTransform(MeanFieldPolicy(TFSet(["brightness(1.5)"]), seq_len=1))
    image = tv_tensors.Image(torch.zeros(3, 40, 60, dtype=torch.uint8))
    together = t({"image": image, "free": free, "hard": hard})
    alone = t({"image": image, "hard": hard})["hard"]
    assert together["hard"].tolist() == alone.tolist() == box


RANDOM_TFS = TFSet(["noise(0.1)", "elastic(60)", "cutout(0.25)"], name="random")


def _agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a > 127) == (b > 127)).float().mean())


def test_grey_and_rgb_images_of_one_sample_get_the_same_random_draws() -> None:
    """RGB and depth in one sample: noise draws as much for the grey image as for the RGB one, so the elastic field
    and the cutout after it land alike (they drifted apart by a quarter of the pixels)."""
    x = torch.zeros(3, 48, 48, dtype=torch.uint8)
    x[:, 10:38, 14:30] = 255
    t = LearnedPolicyTransform(MeanFieldPolicy(RANDOM_TFS, seq_len=3), seed=0)
    for _ in range(8):
        out = t({"rgb": tv_tensors.Image(x), "depth": tv_tensors.Image(x[:1].clone()), "m": tv_tensors.Mask(x[0])})
        assert _agreement(out["rgb"][0], out["depth"][0]) > 0.99, t.last_params["tf_ids_str"]
        assert _agreement(out["depth"][0], out["m"]) > 0.97  # bilinear image edges against a nearest mask
        rgb, depth = tv_tensors.Image(x[None].repeat(2, 1, 1, 1)), tv_tensors.Image(x[None, :1].repeat(2, 1, 1, 1))
        batch = t({"rgb": rgb, "depth": depth})
        assert _agreement(batch["rgb"][:, 0], batch["depth"][:, 0]) > 0.99


def test_a_numpy_array_beside_a_plain_tensor_image_passes_through() -> None:
    """v2 transforms the first plain tensor and never a numpy array, wherever the array stands in the sample."""
    x = torch.randint(0, 256, (3, 32, 40), dtype=torch.uint8)
    heat = np.random.default_rng(0).random((32, 40)).astype(np.float32)
    t = LearnedPolicyTransform(MeanFieldPolicy(TFSet(["hflip"]), seq_len=1), seed=0)
    out = t({"heat": heat, "image": x, "label": np.array([1, 2, 3])})
    assert torch.equal(out["image"], x.flip(-1))
    assert out["heat"] is heat and out["label"].tolist() == [1, 2, 3]
    # Without a tensor, the first array is the image, as before.
    assert np.array_equal(t((heat, 3))[0], heat[:, ::-1])


def test_a_numpy_image_beside_a_tensor_label_is_still_the_image() -> None:
    image = np.random.default_rng(0).integers(0, 256, (32, 40, 3), dtype=np.uint8)
    t = LearnedPolicyTransform(MeanFieldPolicy(TFSet(["hflip"]), seq_len=1), seed=0)
    for label in (torch.tensor(3), torch.tensor([1.0, 0.0])):
        out, out_label = t((image, label))
        assert np.array_equal(out, image[:, ::-1]) and out_label is label


def test_which_plain_leaf_is_the_image() -> None:
    """Without a tv_tensors.Image or PIL image: a tensor of two or more dimensions first (a bad shape is refused,
    not skipped), then an array of two or more, then any tensor or array."""
    t = LearnedPolicyTransform(MeanFieldPolicy(TFSet(["hflip"]), seq_len=1), seed=0)
    image = np.arange(12, dtype=np.uint8).reshape(3, 4)
    label = np.array([1, 0])
    out = t({"label": label, "image": image})
    assert out["label"] is label and np.array_equal(out["image"], image[:, ::-1])
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        t((torch.zeros(3, 4, dtype=torch.uint8), image))
