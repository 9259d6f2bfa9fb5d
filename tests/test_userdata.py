"""vae_core.userdata: a dataset from an uploaded .zip or .npz, and every hostile upload of issue 18.

The hostile files are built here, in tmp_path or in memory: a zip bomb, a nested zip, a
``../evil.png`` entry, a symlink entry, a forged size header, an .npz with an object array, ...
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from vae_core.data import Dataset, content_hash, dataset_from_arrays
from vae_core.userdata import (
    MAX_SIDE,
    UNLABELLED,
    ArchiveRefused,
    LengthMismatchError,
    MixedLabelsError,
    NoImagesError,
    NotADatasetError,
    NpzContentError,
    ObjectArrayError,
    TooManyImagesError,
    UserDataError,
    ZipBombError,
    dataset_from_zip,
    load_user_dataset,
    target_size,
)
from vae_core.userimages import preprocess_upload, style_for


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def noise(h: int, w: int, seed: int, channels: int = 0) -> np.ndarray:
    shape = (h, w, channels) if channels else (h, w)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def make_zip(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def class_zip(
    n_per_class: int = 10, size: tuple[int, int] = (12, 10), classes=("cat", "dog"), root="pets/"
) -> bytes:
    entries = {}
    for c, cls in enumerate(classes):
        for i in range(n_per_class):
            entries[f"{root}{cls}/{i:03d}.png"] = png(noise(*size, seed=100 * c + i))
    return make_zip(entries)


def npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


class TestZipOfImages:
    def test_one_folder_per_class(self):
        ud = load_user_dataset(class_zip(), "pets.zip")
        ds = ud.dataset
        assert isinstance(ds, Dataset) and ds.name == "user:pets.zip"
        assert ds.class_names == ("cat", "dog") and ud.labelled and ud.n_images == 20
        assert ds.image_shape == (1, 12, 10) and ds.x_train.dtype == torch.uint8 and ds.dim == 120
        assert len(ds.x_train) == 18 and len(ds.x_test) == 2  # 90/10, stratified: one of each class
        assert sorted(ds.y_test.tolist()) == [0, 1]
        assert ud.warnings == () and len(ud.content_hash) == 64

    def test_the_pixels_are_the_files_pixels(self):
        ud = load_user_dataset(class_zip(n_per_class=10, classes=("a",), root=""), "one.zip")
        x = torch.cat([ud.dataset.x_train, ud.dataset.x_test]).numpy()
        expected = {noise(12, 10, seed=i).tobytes() for i in range(10)}
        assert {row.tobytes() for row in x} == expected
        # one class folder: no labels
        assert not ud.labelled and ud.dataset.class_names == (UNLABELLED,)

    def test_flat_zip_has_no_labels(self):
        data = make_zip({f"{i}.png": png(noise(8, 8, i)) for i in range(12)})
        ud = load_user_dataset(data, "flat.zip")
        assert not ud.labelled and ud.dataset.class_names == (UNLABELLED,)
        assert set(torch.cat([ud.dataset.y_train, ud.dataset.y_test]).tolist()) == {0}

    def test_colour_and_alpha_become_grey_as_a_single_upload_does(self):
        rgb = [noise(16, 16, i, channels=3) for i in range(10)]
        ud = load_user_dataset(make_zip({f"{i}.png": png(a) for i, a in enumerate(rgb)}), "rgb.zip")
        x = torch.cat([ud.dataset.x_train, ud.dataset.x_test]).numpy()
        style = style_for(ud.dataset.name, ud.dataset.image_shape)
        singles = {preprocess_upload(png(a), style).vector.tobytes() for a in rgb}
        assert {row.tobytes() for row in x} == singles

    def test_large_images_are_scaled_to_64(self):
        data = make_zip({f"{i}.png": png(noise(200, 100, i)) for i in range(10)})
        ud = load_user_dataset(data, "big.zip")
        assert ud.dataset.image_shape == (1, 64, 32)
        assert any("scaled down to 64×32" in w for w in ud.warnings)

    def test_mixed_sizes_are_resized_to_the_most_common(self):
        entries = {f"a{i}.png": png(noise(20, 20, i)) for i in range(8)}
        entries |= {f"b{i}.png": png(noise(30, 30, 50 + i)) for i in range(2)}
        entries["c.png"] = png(noise(10, 40, 99))
        ud = load_user_dataset(make_zip(entries), "mixed.zip")
        assert ud.dataset.image_shape == (1, 20, 20) and ud.n_images == 11
        (msg,) = [w for w in ud.warnings if "different sizes" in w]
        assert "3 different sizes: 3 were resized to the most common size, 20×20 (1 of them stretched" in msg

    def test_target_size(self):
        assert target_size([(28, 28)] * 3 + [(10, 10)]) == (28, 28)
        assert target_size([(128, 96)]) == (MAX_SIDE, 48)

    def test_order_in_the_zip_does_not_matter(self):
        items = [(f"c{c}/{i}.png", png(noise(8, 8, 10 * c + i))) for c in range(2) for i in range(6)]
        a = load_user_dataset(make_zip(dict(items)), "s.zip")
        b = load_user_dataset(make_zip(dict(reversed(items))), "s.zip")
        assert a.content_hash == b.content_hash

    def test_system_files_are_skipped_silently(self):
        entries = {f"{i}.png": png(noise(8, 8, i)) for i in range(10)}
        entries |= {"__MACOSX/._0.png": b"junk", ".DS_Store": b"junk", "sub/Thumbs.db": b"junk"}
        ud = load_user_dataset(make_zip(entries), "mac.zip")
        assert ud.warnings == () and ud.n_images == 10 and not ud.labelled


class TestHostileZips:
    def test_zip_bomb_by_ratio(self, tmp_path):
        path = tmp_path / "bomb.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("bomb.png", b"\x00" * (8 * 2**20))  # 8 MB of zeros -> about 8 kB
        with pytest.raises(ZipBombError, match="zip bomb: bomb.png expands"):
            load_user_dataset(path)

    def test_zip_bomb_by_declared_size(self):
        # a small archive whose central directory claims 400 MB: refused from the directory alone
        data = bytearray(make_zip({"a.png": png(noise(8, 8, 0))}, zipfile.ZIP_STORED))
        cd = data.rindex(b"PK\x01\x02")
        struct.pack_into("<I", data, cd + 24, 400 * 2**20)
        with pytest.raises(ZipBombError, match=r"would expand to 400 MB, over the 300 MB limit"):
            load_user_dataset(bytes(data), "liar.zip")

    def test_a_header_that_understates_cannot_make_it_read_more(self):
        # the directory says 100 bytes; the entry really holds 2 MB: reading stops, the archive is refused
        real = noise(1024, 2048, 3).tobytes()
        data = bytearray(make_zip({"x.png": b"\x89PNG\r\n\x1a\n" + real}, zipfile.ZIP_STORED))
        for sig, off in ((b"PK\x01\x02", 24), (b"PK\x03\x04", 22)):
            pos = data.index(sig)
            struct.pack_into("<I", data, pos + off, 100)
        with pytest.raises(ArchiveRefused, match="x.png cannot be extracted|damaged"):
            load_user_dataset(bytes(data), "understated.zip")

    def test_nested_zip(self):
        inner = class_zip()
        with pytest.raises(ArchiveRefused, match=r"contains another archive \(inner.zip\)"):
            load_user_dataset(make_zip({"inner.zip": inner, "a.png": png(noise(8, 8, 0))}), "outer.zip")

    def test_nested_zip_under_another_name(self):
        with pytest.raises(ArchiveRefused, match="sneaky.png is itself an archive"):
            load_user_dataset(make_zip({"sneaky.png": class_zip()}), "outer.zip")

    @pytest.mark.parametrize(
        "name", ["../evil.png", "a/../../evil.png", "/etc/evil.png", "C:/evil.png", "..\\evil.png"]
    )
    def test_paths_outside_the_archive(self, name):
        entries = {f"{i}.png": png(noise(8, 8, i)) for i in range(10)}
        entries[name] = png(noise(8, 8, 99))
        with pytest.raises(ArchiveRefused, match="could write outside the upload"):
            load_user_dataset(make_zip(entries), "evil.zip")

    def test_symlink_entry(self, tmp_path):
        path = tmp_path / "link.zip"
        with zipfile.ZipFile(path, "w") as zf:
            for i in range(10):
                zf.writestr(f"{i}.png", png(noise(8, 8, i)))
            info = zipfile.ZipInfo("passwd.png")
            info.create_system = 3  # unix
            info.external_attr = 0o120777 << 16  # a symbolic link
            zf.writestr(info, "/etc/passwd")
        with pytest.raises(ArchiveRefused, match="'passwd.png' is a symbolic link"):
            load_user_dataset(path)

    def test_files_that_are_not_images_are_named_and_counted(self):
        entries = {f"cls/{i}.png": png(noise(8, 8, i)) for i in range(10)}
        entries |= {"cls/readme.txt": b"hello", "cls/labels.csv": b"a,b\n", "cls/anim.gif": b"GIF89a...."}
        ud = load_user_dataset(make_zip(entries), "mixed.zip")
        assert ud.n_images == 10
        (msg,) = ud.warnings
        assert msg.startswith("Skipped 3 files that are not PNG, JPEG or WebP images: ")
        for name in ("cls/readme.txt", "cls/labels.csv", "cls/anim.gif"):
            assert name in msg

    def test_damaged_images_are_named_and_counted(self):
        entries = {f"{i}.png": png(noise(8, 8, i)) for i in range(10)}
        good = png(noise(30, 30, 5))
        entries["cut.png"] = good[: len(good) // 2]
        entries["dot.png"] = png(noise(1, 1, 6))
        ud = load_user_dataset(make_zip(entries), "d.zip")
        assert ud.n_images == 10
        (msg,) = ud.warnings
        assert (
            "Skipped 2 images that could not be read" in msg
            and "cut.png" in msg
            and "dot.png (too small)" in msg
        )

    def test_only_non_images_is_refused(self):
        with pytest.raises(
            NoImagesError, match=r"found 0 usable images.*Skipped 2 files that are not.*a.txt"
        ):
            load_user_dataset(make_zip({"a.txt": b"x", "b.txt": b"y"}), "text.zip")

    def test_too_few_images(self):
        with pytest.raises(NoImagesError, match="found 3 usable images; at least 10"):
            load_user_dataset(make_zip({f"{i}.png": png(noise(8, 8, i)) for i in range(3)}), "few.zip")

    def test_some_in_class_folders_some_not(self):
        entries = {f"cat/{i}.png": png(noise(8, 8, i)) for i in range(10)}
        entries["loose.png"] = png(noise(8, 8, 50))
        with pytest.raises(
            MixedLabelsError, match=r"10 images are in class folders but 1 is not \(loose.png\)"
        ):
            load_user_dataset(make_zip(entries), "m.zip")

    def test_not_a_zip(self):
        with pytest.raises(ArchiveRefused, match="not a valid zip archive"):
            load_user_dataset(b"plain text, not a zip", "fake.zip")
        with pytest.raises(NotADatasetError, match="not a .zip or .npz"):
            load_user_dataset(b"whatever", "data.csv")
        with pytest.raises(NotADatasetError, match="empty"):
            load_user_dataset(b"", "nothing.zip")

    def test_upload_over_50_mb(self):
        with pytest.raises(NotADatasetError, match="over the 50 MB limit"):
            load_user_dataset(b"\x00" * (50 * 2**20 + 1), "big.zip")

    def test_too_many_images(self, monkeypatch):
        import vae_core.userdata as ud

        monkeypatch.setattr(ud, "MAX_IMAGES", 12)
        with pytest.raises(TooManyImagesError, match="more than 12 images"):
            dataset_from_zip(make_zip({f"{i}.png": png(noise(8, 8, i)) for i in range(13)}), "many.zip")


class TestNpz:
    def test_x_and_y(self):
        x = noise(40, 8, 8 * 0 + 1).reshape(40, 1, 8).repeat(8, axis=1)
        y = np.arange(40) % 4
        ud = load_user_dataset(npz(x=x, y=y), "arr.npz")
        ds = ud.dataset
        assert (
            ds.name == "user:arr.npz"
            and ds.image_shape == (1, 8, 8)
            and ds.class_names == ("0", "1", "2", "3")
        )
        assert len(ds.x_test) == 4 and sorted(ds.y_test.tolist()) == [0, 1, 2, 3] and ud.labelled

    def test_x_only_and_string_labels(self):
        x = noise(20 * 16, 16, 2).reshape(20, 16, 16)
        assert not load_user_dataset(npz(x=x), "x.npz").labelled
        ud = load_user_dataset(npz(x=x, y=np.array(["shoe", "bag"] * 10)), "s.npz")
        assert ud.dataset.class_names == ("bag", "shoe")

    def test_large_images_are_scaled(self):
        x = noise(10 * 100, 100, 3).reshape(10, 100, 100)
        ud = load_user_dataset(npz(x=x), "big.npz")
        assert ud.dataset.image_shape == (1, 64, 64) and "scaled down from 100×100 to 64×64" in ud.warnings[0]

    def test_object_array_is_refused_and_never_unpickled(self, monkeypatch):
        data = npz(x=np.array([np.zeros((8, 8)), "payload"], dtype=object))

        def trap(*a, **k):
            raise AssertionError("unpickled!")

        monkeypatch.setattr(pickle, "load", trap)
        monkeypatch.setattr(pickle, "loads", trap)
        with pytest.raises(ObjectArrayError, match="'x' is an object array.*never opens them"):
            load_user_dataset(data, "evil.npz")

    def test_object_labels_are_refused(self):
        x = noise(10 * 8, 8, 1).reshape(10, 8, 8)
        with pytest.raises(ObjectArrayError, match="'y' is an object array"):
            load_user_dataset(npz(x=x, y=np.array([None] * 10, dtype=object)), "evil.npz")

    def test_x_and_y_of_different_lengths(self):
        x = noise(12 * 8, 8, 1).reshape(12, 8, 8)
        with pytest.raises(LengthMismatchError, match="x holds 12 images but y holds 11 labels"):
            load_user_dataset(npz(x=x, y=np.zeros(11, np.int64)), "m.npz")

    def test_wrong_dtype_and_shape_and_missing_x(self):
        with pytest.raises(NpzContentError, match="x holds float64 values; expected uint8"):
            load_user_dataset(npz(x=np.zeros((10, 8, 8))), "f.npz")
        with pytest.raises(NpzContentError, match=r"x has shape \(10, 8, 8, 3\)"):
            load_user_dataset(npz(x=np.zeros((10, 8, 8, 3), np.uint8)), "c.npz")
        with pytest.raises(NpzContentError, match="no array named 'x'.*images"):
            load_user_dataset(npz(images=np.zeros((10, 8, 8), np.uint8)), "k.npz")

    def test_npz_bomb_by_declared_size(self):
        data = bytearray(npz(x=np.zeros((10, 8, 8), np.uint8)))
        cd = data.rindex(b"PK\x01\x02")
        struct.pack_into("<I", data, cd + 24, 400 * 2**20)
        with pytest.raises(ZipBombError, match="over the 300 MB limit"):
            load_user_dataset(bytes(data), "liar.npz")

    def test_error_types_are_value_errors(self):
        for cls in (ArchiveRefused, ZipBombError, NoImagesError, ObjectArrayError, LengthMismatchError):
            assert issubclass(cls, UserDataError) and issubclass(cls, ValueError)


class TestSplitAndHash:
    def arrays(self, n: int = 100):
        rng = np.random.default_rng(0)
        return rng.integers(0, 256, (n, 6, 6), dtype=np.uint8), np.arange(n) % 3

    def test_split_is_seeded_and_disjoint(self):
        x, y = self.arrays()
        a = dataset_from_arrays("t", x, y, ("a", "b", "c"), seed=1)
        b = dataset_from_arrays("t", x, y, ("a", "b", "c"), seed=1)
        c = dataset_from_arrays("t", x, y, ("a", "b", "c"), seed=2)
        assert torch.equal(a.x_test, b.x_test) and not torch.equal(a.x_test, c.x_test)
        train = {r.tobytes() for r in a.x_train.numpy()}
        test = {r.tobytes() for r in a.x_test.numpy()}
        assert not train & test and len(train) + len(test) == 100  # disjoint, nothing lost
        # stratified: round(0.1 * 34) = round(0.1 * 33) = 3 test images from each class
        assert sorted(a.y_test.tolist()) == [0] * 3 + [1] * 3 + [2] * 3

    def test_hash_is_stable_and_content_sensitive(self):
        x, y = self.arrays()
        names = ("a", "b", "c")
        h = content_hash(dataset_from_arrays("one", x, y, names))
        assert h == content_hash(dataset_from_arrays("another name", x, y, names, source="elsewhere"))
        assert len(h) == 64 and int(h, 16) >= 0
        x2 = x.copy()
        x2[5, 2, 3] ^= 1  # one pixel, one bit
        y2 = y.copy()
        y2[7] = (y2[7] + 1) % 3  # one label
        assert content_hash(dataset_from_arrays("one", x2, y, names)) != h
        assert content_hash(dataset_from_arrays("one", x, y2, names)) != h
        assert content_hash(dataset_from_arrays("one", x, y, names, seed=9)) != h  # another split
        assert content_hash(dataset_from_arrays("one", x, y, ("a", "b", "z"))) != h
        assert (
            content_hash(dataset_from_arrays("one", x.reshape(100, 4, 9), y, names)) != h
        )  # same bytes, other shape

    def test_hash_of_the_upload_is_stable(self):
        data = class_zip()
        assert load_user_dataset(data, "a.zip").content_hash == load_user_dataset(data, "b.zip").content_hash


def test_warnings_reach_the_chinese_ui_translated():
    """A warning is a Msg with an English template: the app shows it in the session's language (issue 24)."""
    from lab_pages.i18n import catalogue

    zh = catalogue("zh_CN")
    entries = {f"{i}.png": png(noise(8 + i % 2, 8, i)) for i in range(10)} | {"a.txt": b"x"}
    ud = load_user_dataset(make_zip(entries), "w.zip")
    assert len(ud.warnings) == 2
    for w in ud.warnings:
        assert zh.gettext(w.template) != w.template, w.template
