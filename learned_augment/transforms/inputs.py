"""Input dispatch for the positional (torchvision) protocol: PIL images, numpy HWC arrays, CHW / BCHW tensors,
tv_tensors and v2 samples, flattened into leaves, the images found among them, and each converted once to the
canonical numpy HWC form and back.

torchvision is imported only where a tensor is present: importing it costs seconds in every fresh worker.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

try:  # PIL is a torchvision dependency; keep the import soft for type checks only
    from PIL import Image as PILImage
except ImportError:  # pragma: no cover
    PILImage = None  # type: ignore[assignment]


def is_pil(x: Any) -> bool:
    """Whether ``x`` is a PIL image (without importing PIL where it is missing)."""
    return PILImage is not None and isinstance(x, PILImage.Image)


def flatten(inputs: Any) -> tuple[list[Any], Any]:
    """``tree_flatten``, except that a lone array, tensor or PIL image is its own one-leaf list (spec ``None``)."""
    if isinstance(inputs, (np.ndarray, torch.Tensor)) or is_pil(inputs):
        # The common case, and flattening even a one-leaf tree costs as much as augmenting a small image.
        return [inputs], None
    from torch.utils._pytree import tree_flatten

    return tree_flatten(inputs)


def unflatten(flat: list[Any], spec: Any) -> Any:
    if spec is None:
        return flat[0]
    from torch.utils._pytree import tree_unflatten

    return tree_unflatten(flat, spec)


def find_images(flat: list[Any]) -> list[int]:
    """Positions of the images among ``flat``, by torchvision v2's rule (``Transform._needs_transform_list``):
    every ``tv_tensors.Image`` and PIL image; where there is none, one plain leaf only (v2 leaves other plain
    tensors alone: datasets put labels and other numbers in them): the first plain tensor of at least two
    dimensions (a bad shape is then refused, not skipped), else the first numpy array of at least two, else the
    first tensor or array. v2 never transforms arrays, so a sample with a tensor image keeps its arrays (heat maps,
    labels) as they are; a numpy image is the image where no such tensor is (beside a scalar or vector label).

    Raises
    ------
    TypeError
        If ``flat`` holds a ``tv_tensors.Video``, which v2 would transform and this transform cannot.
    """
    if len(flat) == 1 and (isinstance(flat[0], np.ndarray) or is_pil(flat[0])):
        return [0]
    arrays = [i for i, x in enumerate(flat) if isinstance(x, np.ndarray)]
    if any(isinstance(x, torch.Tensor) for x in flat):
        from torchvision import tv_tensors

        if any(isinstance(x, tv_tensors.Video) for x in flat):
            raise TypeError(
                "tv_tensors.Video is not supported; pass the frames as tv_tensors.Image leaves of one sample "
                "(e.g. a list), which share one draw"
            )
        explicit = [i for i, x in enumerate(flat) if isinstance(x, tv_tensors.Image) or is_pil(x)]
        tensors = [i for i, x in enumerate(flat) if is_pure_tensor(x)]
    else:
        # No tensor, so no tv_tensor either: importing torchvision would cost seconds in every fresh worker.
        explicit = [i for i, x in enumerate(flat) if is_pil(x)]
        tensors = []
    if explicit:
        return explicit
    ranked = [i for i in tensors if flat[i].ndim >= 2] + [i for i in arrays if flat[i].ndim >= 2] + tensors + arrays
    return ranked[:1]


def are_batches(images: list[Any]) -> bool:
    """Whether the images of one sample are ``(B, C, H, W)`` batches (else single images); a sample that mixes the
    two cannot share one draw and is refused."""
    batched = [isinstance(x, torch.Tensor) and x.ndim == 4 for x in images]
    if any(batched) and not all(batched):
        raise ValueError("a sample cannot mix (B, C, H, W) batches with single images: they share one draw")
    return any(batched)


def is_pure_tensor(x: Any) -> bool:
    """A tensor that is not a tv_tensor (call only where a tensor is present: it imports torchvision)."""
    from torchvision import tv_tensors

    return isinstance(x, torch.Tensor) and not isinstance(x, tv_tensors.TVTensor)


def shared_size(images: list[Any]) -> tuple[int, int]:
    """The ``(H, W)`` of ``images``, which must agree: one draw's random TFs (a cutout's place, an elastic field)
    are drawn for one size, and targets move at that size (v2's size-dependent transforms refuse such samples too).
    """
    sizes = {image_hw(x) for x in images}
    if len(sizes) > 1:
        shown = " and ".join(f"{h}x{w}" for h, w in sorted(sizes))
        raise ValueError(
            f"the images of a sample share one draw, so they must have the same height and width; got {shown}"
        )
    return sizes.pop()


def match_layout(out: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``out``, a ``(C, H, W)`` or ``(B, C, H, W)`` result for ``like``, in the memory layout torchvision's kernels
    give: channels-last memory (HWC behind the CHW shape) where ``like`` has it, else contiguous (a copy at most)."""
    batch = like if like.ndim == 4 else like.unsqueeze(0)
    if like.is_contiguous() or not batch.is_contiguous(memory_format=torch.channels_last):
        return out.contiguous()
    if out.ndim == 4:
        return out.contiguous(memory_format=torch.channels_last)
    return out.unsqueeze(0).contiguous(memory_format=torch.channels_last)[0]


def wrap_like(out: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``out`` as the same tv_tensor type as ``like`` (torch ops on tv_tensors return plain tensors)."""
    from torchvision import tv_tensors

    return tv_tensors.wrap(out, like=like) if isinstance(like, tv_tensors.TVTensor) else out


def is_target(x: Any) -> bool:
    from torchvision import tv_tensors

    return isinstance(x, (tv_tensors.BoundingBoxes, tv_tensors.Mask)) or type(x).__name__ == "KeyPoints"


def image_hw(image: Any) -> tuple[int, int]:
    if is_pil(image):
        return image.height, image.width
    if image.ndim < 2:
        layout = "(C, H, W)" if isinstance(image, torch.Tensor) else "(H, W) or (H, W, C)"
        raise ValueError(f"images must have shape {layout}, got shape {tuple(image.shape)}")
    if isinstance(image, torch.Tensor):
        return int(image.shape[-2]), int(image.shape[-1])
    return int(image.shape[0]), int(image.shape[1])


_PIL_MODES = ("L", "RGB")
_PIL_ALPHA_MODES = ("LA", "RGBA")


def map_single_image(image: Any, fn: Any) -> Any:
    """Run ``fn`` on the numpy HWC form of one image (checked by :func:`check_input_image`) and give the result back
    in the input's type."""
    if is_pil(image):
        return PILImage.fromarray(fn(np.asarray(image)))
    if isinstance(image, torch.Tensor):
        dtype = image.dtype
        host = image.detach().cpu()
        arr = (host if dtype == torch.uint8 else host.float()).permute(1, 2, 0).numpy()
        out = torch.from_numpy(np.ascontiguousarray(fn(np.ascontiguousarray(arr)))).permute(2, 0, 1)
        return wrap_like(match_layout(out, image).to(device=image.device, dtype=dtype), image)
    return in_float32(fn, image)


def in_float32(fn: Any, image: np.ndarray) -> np.ndarray:
    """``fn`` on a numpy image, float16 and float64 ones run in float32 and given back in their dtype."""
    if image.dtype in (np.float16, np.float64):
        return fn(image.astype(np.float32)).astype(image.dtype)
    return fn(image)


_BOX_FORMATS = ("XYXY", "XYWH", "CXCYWH")


def collect_tv_targets(
    flat: list[Any], image_positions: list[int]
) -> tuple[dict[str, Any], list[tuple[int, str, Any]]]:
    """Gather tv_tensors targets as ops targets (pixel boxes XYXY, HWC masks, (N, 2) keypoints); several
    ``BoundingBoxes`` (or ``KeyPoints``) in one sample are stacked into one array, each slot recording its rows."""
    if not any(isinstance(x, torch.Tensor) for i, x in enumerate(flat) if i not in image_positions):
        return {}, []
    from torchvision import tv_tensors
    from torchvision.transforms.v2 import functional as TF

    targets: dict[str, Any] = {}
    slots: list[tuple[int, str, Any]] = []
    masks: list[np.ndarray] = []
    stacked: dict[str, list[np.ndarray]] = {"bboxes": [], "keypoints": []}

    def stack(i: int, key: str, rows: np.ndarray, x: Any) -> None:
        start = sum(len(r) for r in stacked[key])
        stacked[key].append(rows)
        slots.append((i, key, (x, start, start + len(rows), rows)))

    for i, x in enumerate(flat):
        if i in image_positions:
            continue
        if isinstance(x, tv_tensors.BoundingBoxes):
            fmt = x.format
            if fmt.name not in _BOX_FORMATS:
                raise NotImplementedError(
                    f"bounding box format {fmt.name} is not supported; use one of {', '.join(_BOX_FORMATS)}"
                )
            xyxy = TF.convert_bounding_box_format(x, new_format=tv_tensors.BoundingBoxFormat.XYXY)
            stack(i, "bboxes", xyxy.detach().cpu().double().numpy().reshape(-1, 4), x)
        elif isinstance(x, tv_tensors.Mask):
            arr = x.detach().cpu()
            lead = arr.shape[:-2]
            hwc = arr.reshape(-1, *arr.shape[-2:]).permute(1, 2, 0).numpy()
            masks.append(hwc)
            slots.append((i, f"masks:{len(masks) - 1}", (x, lead)))
        elif type(x).__name__ == "KeyPoints" and isinstance(x, tv_tensors.TVTensor):
            stack(i, "keypoints", x.detach().cpu().double().numpy().reshape(-1, 2), x)
    if masks:
        targets["masks"] = masks
    for key, rows in stacked.items():
        if rows:
            targets[key] = np.concatenate(rows)
    return targets, slots


def boxes_clipped(slots: list[tuple[int, str, Any]]) -> bool:
    """Whether moved boxes are to be clipped to the image: unless one ``BoundingBoxes`` of the sample was made with
    ``clamping_mode=None`` (those may leave the canvas, as torchvision's own kernels leave them; the others are then
    clipped by :func:`restore_tv_targets`)."""
    return not any(key == "bboxes" and getattr(orig[0], "clamping_mode", "soft") is None for _, key, orig in slots)


def check_target_sizes(flat: list[Any], image_positions: list[int], h: int, w: int) -> None:
    """Refuse a ``tv_tensors.Mask`` (``(..., H, W)``) of another height or width than the ``h`` x ``w`` images, and
    ``BoundingBoxes`` or ``KeyPoints`` whose ``canvas_size`` is not the images' size (their coordinates would be
    moved in the image's frame and read in another), before the draw, so that it fails whatever p draws.

    Raises
    ------
    ValueError
        Naming the target's shape or canvas and the images' size.
    """
    if not any(isinstance(x, torch.Tensor) for i, x in enumerate(flat) if i not in image_positions):
        return
    from torchvision import tv_tensors

    for i, x in enumerate(flat):
        if i in image_positions:
            continue
        if isinstance(x, tv_tensors.Mask) and tuple(x.shape[-2:]) != (h, w):
            raise ValueError(f"a Mask of shape {tuple(x.shape)} does not match the {h}x{w} image")
        canvas = getattr(x, "canvas_size", None)
        if isinstance(x, tv_tensors.TVTensor) and canvas is not None and tuple(canvas) != (h, w):
            raise ValueError(
                f"{type(x).__name__} with canvas_size {tuple(canvas)} do not match the {h}x{w} image; "
                "give them the image's size as canvas_size"
            )


def restore_tv_targets(
    flat: list[Any], slots: list[tuple[int, str, Any]], moved: dict[str, Any], h: int, w: int, clipped: bool
) -> None:
    """Put the moved targets back in ``flat`` as the tv_tensors they came as; boxes moved unclipped (``clipped``
    false, see :func:`boxes_clipped`) are clipped here unless their ``clamping_mode`` is ``None``."""
    from torchvision import tv_tensors
    from torchvision.transforms.v2 import functional as TF

    for i, key, info in slots:
        if key == "bboxes":
            orig, start, stop, before = info
            rows = moved["bboxes"][start:stop, :4]
            # As apply_sequence clips: only boxes a geometric TF moved.
            if not clipped and getattr(orig, "clamping_mode", "soft") is not None and not np.array_equal(rows, before):
                rows = np.clip(rows, 0.0, [w, h, w, h])
            xyxy = torch.from_numpy(np.ascontiguousarray(rows)).to(orig.dtype).reshape(orig.shape[:-1] + (4,))
            # Wrapped like the input, so every attribute of it (canvas size, clamping mode) carries over.
            boxes = tv_tensors.wrap(xyxy.to(orig.device), like=orig, format=tv_tensors.BoundingBoxFormat.XYXY)
            flat[i] = TF.convert_bounding_box_format(boxes, new_format=orig.format)
        elif key.startswith("masks:"):
            mask, lead = info
            hwc = moved["masks"][int(key.split(":")[1])]
            chw = torch.from_numpy(np.ascontiguousarray(hwc)).reshape(h, w, -1).permute(2, 0, 1)
            flat[i] = tv_tensors.wrap(chw.reshape(*lead, h, w).contiguous().to(mask.device, mask.dtype), like=mask)
        elif key == "keypoints":
            orig, start, stop, _ = info
            rows = np.ascontiguousarray(moved["keypoints"][start:stop, :2])
            pts = torch.from_numpy(rows).to(orig.dtype).reshape(orig.shape)
            flat[i] = tv_tensors.wrap(pts.to(orig.device), like=orig)


def _pil_mode_advice(mode: str, alpha: bool = False, transparency: bool = False) -> str:
    """How to bring a PIL image of ``mode`` to what the transform takes, without losing what the user may need;
    ``alpha``: the transform takes LA and RGBA; ``transparency``: the image has a transparent colour (palette
    images)."""
    if mode in ("I", "F") or mode.startswith("I;"):
        return (
            "pass it as a float tensor scaled to [0, 1] (e.g. torch.from_numpy(np.asarray(img, np.float32) / "
            "peak)[None]): img.convert('L') would clip values above 255"
        )
    if alpha and (mode in ("La", "RGBa", "PA") or (mode == "P" and transparency)):
        target = "LA" if mode.startswith("L") else "RGBA"
        return f"convert to {target!r} first (img.convert({target!r})), which keeps the alpha channel"
    if mode in ("LA", "La", "RGBA", "RGBa", "PA"):
        target = "L" if mode.startswith("L") else "RGB"
        return (
            f"convert to {target!r} first (img.convert({target!r}); to keep the alpha channel, pass it as a "
            "tv_tensors.Mask or an Albumentations mask, which moves with the geometric TFs)"
        )
    if mode == "1":
        return "convert to 'L' first (img.convert('L'))"
    return "convert to 'RGB' or 'L' first (e.g. img.convert('RGB'))"


def check_input_image(image: Any, alpha: bool = False) -> None:
    """Refuse, in one line, an image the transform cannot augment: a PIL mode other than L or RGB, a tensor that is
    not ``(C, H, W)`` or ``(B, C, H, W)`` with C in {1, 3}, a numpy array that is not ``(H, W)`` or ``(H, W, C)``
    with C in {1, 3}, another dtype than uint8 or floating point, no pixels, or float values with NaN, infinities
    or outside [0, 1] (beyond a round-off tolerance). ``alpha=True`` also takes LA and RGBA images and 2 or 4
    channels (grey or RGB, then alpha). Called before the draw, so that a bad input fails whatever p draws, not
    only on the calls that augment."""
    from ..ops.batch import check_values
    from ..ops.image import ALPHA_CHANNELS, check_image

    if is_pil(image):
        if image.mode not in (_PIL_MODES + _PIL_ALPHA_MODES if alpha else _PIL_MODES):
            advice = _pil_mode_advice(image.mode, alpha, "transparency" in image.info)
            raise ValueError(f"PIL images in mode {image.mode!r} are not supported; {advice}")
        if image.width == 0 or image.height == 0:
            raise ValueError(f"image is empty ({image.width}x{image.height} pixels)")
        return
    if isinstance(image, torch.Tensor):
        shape = tuple(image.shape)
        if image.ndim not in (3, 4):
            raise ValueError(f"tensor images must be (C, H, W) or (B, C, H, W), got shape {shape}")
        if image.ndim == 4 and image.shape[0] == 0:
            return  # an empty batch has nothing to augment and is returned as it is
        if image.shape[-3] not in ((1, 3) + ALPHA_CHANNELS if alpha else (1, 3)):
            expected = "1 or 3 channels (or 2 or 4: grey or RGB, then alpha)" if alpha else "1 or 3 channels"
            raise ValueError(
                f"tensor images must have {expected}, got {image.shape[-3]} channels (shape {shape}; channels "
                "go before height and width)"
            )
        if image.dtype != torch.uint8 and not image.dtype.is_floating_point:
            raise TypeError(f"tensor images must be uint8 or floating point in [0, 1], got {image.dtype}")
        if image.shape[-1] == 0 or image.shape[-2] == 0:
            raise ValueError(f"images are empty (shape {shape})")
        if image.is_floating_point():
            check_values(image.as_subclass(torch.Tensor))
        return
    if isinstance(image, np.ndarray):
        # The TFs' own check; float16 and float64 run in float32 (in_float32), so they are checked in it.
        wide = np.issubdtype(image.dtype, np.floating) and image.dtype != np.float32
        check_image(image.astype(np.float32) if wide else image, alpha=alpha)
        return
    raise TypeError(f"unsupported image type {type(image).__name__}")
