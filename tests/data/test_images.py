"""A user's image file (``--data``): every malformed file is a one-line error naming the
key; a good file, uint8 or float, (N, H, W) or (N, C, H, W), loads as the same images."""

from __future__ import annotations

import numpy as np
import pytest

from ringcert.data.images import ImageSet, load_images
from ringcert.errors import RingcertError


def _good(n: int = 3, side: int = 8) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, side, side), dtype=np.uint8)
    masks = np.zeros((n, 2, side, side), dtype=bool)
    masks[:, 0, :, : side // 2] = True
    masks[:, 1, :, side // 2 :] = True
    masks[:, :, 0, :] = False  # neither mask covers the whole image
    return {"images": images, "masks": masks, "labels": np.tile([3, 7], (n, 1))}


def _write(tmp_path, **arrays) -> str:
    path = tmp_path / "mine.npz"
    np.savez(path, **arrays)
    return str(path)


def test_uint8_and_float_channel_first_files_load_alike(tmp_path) -> None:
    arrays = _good()
    as_uint8 = load_images(_write(tmp_path, **arrays))
    floats = dict(arrays, images=(arrays["images"].astype(np.float64) / 255.0)[:, None])
    as_float = load_images(_write(tmp_path, **floats))
    assert as_uint8.images.shape == (3, 1, 8, 8) and as_uint8.images.dtype == np.float32
    np.testing.assert_allclose(as_uint8.images, as_float.images, atol=1e-7)
    assert as_uint8.num_objects == 2 and as_uint8.labels.tolist() == [[3, 7]] * 3
    assert isinstance(as_uint8, ImageSet) and as_uint8.image_shape == (1, 8, 8)


@pytest.mark.parametrize(("change", "message"), [
    ({"labels": None}, "lacks the key"),
    ({"images": np.zeros((3, 8), dtype=np.uint8)}, "images must have shape"),
    ({"images": np.full((3, 8, 8), 2.0)}, r"float images must lie in \[0, 1\]"),
    ({"images": np.full((3, 8, 8), np.nan)}, r"float images must lie in \[0, 1\]"),
    ({"masks": np.ones((3, 2, 8, 7), dtype=bool)}, "masks must have shape"),
    ({"masks": np.ones((3, 1, 8, 8), dtype=bool)}, "at least two objects"),
    ({"masks": np.full((3, 2, 8, 8), 2)}, "boolean or 0/1"),
    ({"labels": np.zeros((3, 3), dtype=np.int64)}, "labels must have shape"),
    ({"labels": np.full((3, 2), -1)}, "non-negative integers"),
])
def test_malformed_files_are_one_line_errors(tmp_path, change, message) -> None:
    arrays = {key: value for key, value in {**_good(), **change}.items() if value is not None}
    with pytest.raises(RingcertError, match=message) as error:
        load_images(_write(tmp_path, **arrays))
    assert "\n" not in str(error.value)


def test_empty_and_full_masks_name_the_image_and_object(tmp_path) -> None:
    arrays = _good()
    empty = arrays["masks"].copy()
    empty[2, 1] = False
    with pytest.raises(RingcertError, match="object 1 in image 2 is empty"):
        load_images(_write(tmp_path, **dict(arrays, masks=empty)))
    full = arrays["masks"].copy()
    full[1, 0] = True
    with pytest.raises(RingcertError, match="object 0 in image 1 covers the whole image"):
        load_images(_write(tmp_path, **dict(arrays, masks=full)))


def test_missing_and_unreadable_files(tmp_path) -> None:
    with pytest.raises(RingcertError, match="does not exist"):
        load_images(tmp_path / "nope.npz")
    (tmp_path / "bad.npz").write_text("not a zip")
    with pytest.raises(RingcertError, match=r"not a readable \.npz"):
        load_images(tmp_path / "bad.npz")
