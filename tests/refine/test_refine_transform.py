import pickle

import albumentations as A
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T1
from torchvision import tv_tensors
from torchvision.transforms import v2

import learned_augment as la
from learned_augment.io import ArtifactError

NAME = "pretrained:digits-synthetic-to-mnist"


@pytest.fixture(scope="module")
def digit():
    x = np.zeros((28, 28), np.uint8)
    x[5:22, 12:16] = 255
    return x


@pytest.fixture(scope="module")
def tf():
    return la.RefineSynthetic(NAME)


def test_every_input_type_keeps_type_shape_dtype_and_agrees(tf, digit):
    ref = tf(digit)
    assert ref.shape == (28, 28) and ref.dtype == np.uint8
    assert not np.array_equal(ref, digit)  # the refiner does change the image
    np.testing.assert_array_equal(tf(digit[:, :, None])[:, :, 0], ref)
    pil = tf(Image.fromarray(digit))
    assert isinstance(pil, Image.Image) and pil.mode == "L" and np.array_equal(np.asarray(pil), ref)
    t = tf(torch.from_numpy(digit)[None])
    assert t.dtype == torch.uint8 and t.shape == (1, 28, 28) and np.array_equal(t[0].numpy(), ref)
    f = tf(torch.from_numpy(digit)[None].float() / 255)
    assert f.dtype == torch.float32 and float((f[0] * 255 - torch.from_numpy(ref).float()).abs().max()) <= 1.0
    batch = tf(torch.from_numpy(np.stack([digit, digit]))[:, None])
    assert batch.shape == (2, 1, 28, 28) and np.array_equal(batch[1, 0].numpy(), ref)
    img = tf(tv_tensors.Image(torch.from_numpy(digit)[None]))
    assert isinstance(img, tv_tensors.Image)


def test_a_call_without_input_is_one_line(tf):
    with pytest.raises(TypeError, match=r"RefineSynthetic takes one input"):
        tf()


def test_in_torchvision_v1_and_v2_targets_pass_through(tf, digit):
    out = T1.Compose([tf, T1.ToTensor()])(Image.fromarray(digit))
    assert out.shape == (1, 28, 28) and out.dtype == torch.float32
    boxes = tv_tensors.BoundingBoxes([[12, 5, 16, 22]], format="XYXY", canvas_size=(28, 28))
    mask = tv_tensors.Mask(torch.from_numpy(digit > 0)[None])
    img, target = v2.Compose([tf])(tv_tensors.Image(torch.from_numpy(digit)[None]), {"boxes": boxes, "mask": mask})
    assert torch.equal(target["boxes"], boxes) and torch.equal(target["mask"], mask)
    assert isinstance(img, tv_tensors.Image)


def test_every_image_of_a_v2_sample_is_refined(tf, digit):
    ref = tf(digit)
    left, right = tv_tensors.Image(torch.from_numpy(digit)[None]), Image.fromarray(255 - digit)
    label = torch.tensor(3)
    out = tf({"left": left, "right": right, "label": label})
    assert isinstance(out["left"], tv_tensors.Image) and np.array_equal(out["left"][0].numpy(), ref)
    assert np.array_equal(np.asarray(out["right"]), tf(255 - digit))
    assert out["label"] is label
    batch = torch.from_numpy(np.stack([digit, digit]))[:, None]
    batches = tf([tv_tensors.Image(batch), tv_tensors.Image(batch)])
    assert all(np.array_equal(b[1, 0].numpy(), ref) for b in batches)
    plain = tf([batch, batch])  # v2's rule: without a tv_tensors.Image, only the first plain tensor is an image
    assert np.array_equal(plain[0][1, 0].numpy(), ref) and torch.equal(plain[1], batch)
    with pytest.raises(ValueError, match="same size"):
        tf([tv_tensors.Image(batch), tv_tensors.Image(batch[:1].repeat(3, 1, 1, 1))])
    with pytest.raises(ValueError, match="cannot mix"):
        tf([tv_tensors.Image(batch), tv_tensors.Image(batch[0])])


def test_albumentations_compose_dict_round_trip_and_p(digit):
    pipe = A.Compose([la.RefineSynthetic(NAME)], bbox_params=A.BboxParams(format="pascal_voc", label_fields=["l"]))
    r = pipe(image=digit, mask=(digit > 0).astype(np.uint8), bboxes=[[12, 5, 16, 22]], l=[3])
    np.testing.assert_array_equal(r["mask"], (digit > 0).astype(np.uint8))
    np.testing.assert_allclose(r["bboxes"], [[12, 5, 16, 22]])
    again = A.from_dict(A.to_dict(pipe))
    np.testing.assert_array_equal(again(image=digit, bboxes=[], l=[])["image"], r["image"])
    never = la.RefineSynthetic(NAME, p=0.0)
    np.testing.assert_array_equal(never(digit), digit)
    np.testing.assert_array_equal(A.Compose([never])(image=digit)["image"], digit)


def test_in_memory_refiner_cannot_go_to_dict_but_pickles(digit, tf):
    mem = la.RefineSynthetic(tf.refiner_obj)
    with pytest.raises(ValueError, match="save it"):
        A.to_dict(A.Compose([mem]))
    clone = pickle.loads(pickle.dumps(mem))
    np.testing.assert_array_equal(clone(digit), mem(digit))


def test_bad_arguments():
    with pytest.raises(TypeError, match="not a Refiner"):
        la.RefineSynthetic("pretrained:mnist-lstm")
    with pytest.raises(TypeError, match="refiner must be"):
        la.RefineSynthetic(42)
    with pytest.raises(ValueError, match="direction"):
        la.RefineSynthetic(NAME, direction="sideways")
    with pytest.raises((ArtifactError, FileNotFoundError)):
        la.RefineSynthetic("/nonexistent/refiner.safetensors")


def test_mixed_reality_dataset_composes_with_policy_transform(tf):
    images, labels = la.load_sample()
    syn, syn_labels = __import__("learned_augment.synthetic", fromlist=["render_digits"]).render_digits(40, seed=0)
    ds = la.MixedRealityDataset(
        (images[:40], labels[:40]),
        (syn, syn_labels),
        refiner=tf.refiner_obj,
        synthetic_fraction=0.5,
        transform=la.LearnedPolicyTransform.from_pretrained("mnist-lstm", p=1.0, seed=0),
    )
    items = [ds[i] for i in range(len(ds))]
    assert all(np.asarray(x).shape[:2] == (28, 28) for x, _ in items)
    assert {int(y) for _, y in items} <= set(range(10))


class _Refined(torch.utils.data.Dataset):
    def __init__(self, seed=None):
        self.t = la.RefineSynthetic(NAME, p=0.5, seed=seed)
        self.img = np.zeros((28, 28), np.uint8)
        self.img[8:20, 12:16] = 255

    def __len__(self):
        return 16

    def __getitem__(self, i):
        return int(not np.array_equal(self.t(self.img), self.img))


@pytest.mark.parametrize("seed", [None, 3])
def test_p_draws_differ_by_worker_and_epoch_and_repeat_under_the_loader_seed(seed):
    def epochs(loader_seed):
        torch.manual_seed(loader_seed)
        ds = _Refined(seed)
        loader = torch.utils.data.DataLoader(
            ds,
            batch_size=None,
            num_workers=2,
            multiprocessing_context="fork",
            timeout=120,
            generator=torch.Generator().manual_seed(loader_seed),
        )
        return ["".join(str(b) for b in loader) for _ in range(3)]

    first = epochs(0)
    assert len(set(first)) > 1  # fresh draws every epoch
    assert any(e[0::2] != e[1::2] for e in first)  # workers 0 and 1 (alternate items) do not draw in lock-step
    assert epochs(0) == first


@pytest.mark.parametrize(
    "image",
    [Image.new("LA", (28, 28)), Image.new("RGBA", (28, 28)), np.zeros((28, 28, 2), np.uint8), torch.zeros(4, 28, 28)],
    ids=["PIL LA", "PIL RGBA", "2-channel array", "4-channel tensor"],
)
def test_images_with_alpha_are_refused_in_one_line(tf, image) -> None:
    # The policy transforms take alpha (it moves with the geometry); a refiner's network reads 1 or 3 channels.
    with pytest.raises(ValueError, match="mode|channels") as info:
        tf(image)
    assert "\n" not in str(info.value)
