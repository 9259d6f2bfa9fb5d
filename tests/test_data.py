"""Datasets: the offline digits split, the IDX reader, the 28x28 loaders and their error messages."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import needs_fashion
from vae_core import data
from vae_core.data import DatasetError, DatasetUnavailable, dataset_available, load_dataset, read_idx


def write_idx(
    path: Path, arr: np.ndarray, gz: bool = False, magic: bytes | None = None, cut: int = 0
) -> Path:
    """Write a uint8 array as an IDX file (optionally gzipped, with a wrong magic, or truncated)."""
    head = magic if magic is not None else bytes([0, 0, 8, arr.ndim])
    raw = head + struct.pack(">" + "I" * arr.ndim, *arr.shape) + arr.astype(np.uint8).tobytes()
    if cut:
        raw = raw[:-cut]
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as fh:
            fh.write(raw)
    else:
        path.write_bytes(raw)
    return path


def fake_mnist(
    folder: Path, gz: bool, n_train: int = 30, n_test: int = 10, seed: int = 0
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, arr in arrays.items():
        write_idx(folder / name, arr, gz=gz)
    return arrays


class TestDigits:
    def test_fixed_stratified_split(self):
        ds = load_dataset("digits")
        assert ds.x_train.shape == (1438, 64) and ds.x_test.shape == (359, 64)
        assert ds.x_train.dtype == torch.uint8 and ds.y_train.dtype == torch.int64
        assert ds.image_shape == (1, 8, 8) and len(ds.class_names) == 10
        counts = torch.bincount(ds.y_test, minlength=10)
        assert counts.min() >= 34 and counts.max() <= 38  # 20 % of each class
        assert int(ds.x_train.max()) == 255 and int(ds.x_train.min()) == 0
        again = data._load_digits(data.DATASETS["digits"])  # not the cached object: same split
        assert torch.equal(again.x_test, ds.x_test) and torch.equal(again.y_train, ds.y_train)

    def test_batches_are_index_slices_as_floats(self):
        ds = load_dataset("digits")
        idx = torch.tensor([5, 0, 7])
        xb = ds.batch("train", idx)
        assert xb.dtype == torch.float32 and xb.shape == (3, 64)
        assert torch.allclose(xb[1], ds.x_train[0].float() / 255)
        assert float(xb.min()) >= 0 and float(xb.max()) <= 1
        with pytest.raises(ValueError, match="split"):
            ds.batch("val", idx)

    def test_always_available(self):
        assert dataset_available("digits")

    def test_unknown_name(self):
        with pytest.raises(DatasetError, match="unknown dataset"):
            load_dataset("cifar")


class TestIdx:
    @pytest.mark.parametrize("gz", [False, True])
    def test_round_trip(self, tmp_path, gz):
        arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
        p = write_idx(tmp_path / "x-idx3-ubyte", arr, gz=gz)
        assert np.array_equal(read_idx(p), arr)
        lab = np.array([3, 1, 4], dtype=np.uint8)
        assert np.array_equal(read_idx(write_idx(tmp_path / "y-idx1-ubyte", lab, gz=gz)), lab)

    def test_wrong_magic_names_the_file(self, tmp_path):
        p = write_idx(tmp_path / "bad-idx3-ubyte", np.zeros((2, 2, 2)), magic=b"\x12\x34\x08\x03")
        with pytest.raises(DatasetError, match="bad-idx3-ubyte.*not an IDX file"):
            read_idx(p)

    def test_truncated_names_the_file(self, tmp_path):
        p = write_idx(tmp_path / "cut-idx3-ubyte", np.zeros((4, 5, 5)), cut=7, gz=True)
        with pytest.raises(DatasetError, match="cut-idx3-ubyte.gz.*truncated"):
            read_idx(p)

    def test_damaged_gzip_and_missing_file(self, tmp_path):
        p = tmp_path / "t-idx1-ubyte.gz"
        p.write_bytes(b"\x1f\x8b\x08\x00garbage")
        with pytest.raises(DatasetError, match="t-idx1-ubyte.gz"):
            read_idx(p)
        with pytest.raises(DatasetError, match="not found"):
            read_idx(tmp_path / "nope")


class TestMnistLoader:
    @pytest.mark.parametrize("layout,gz", [("MNIST/raw", False), ("mnist", True)])
    def test_loads_small_idx_files(self, tmp_path, layout, gz):
        arrays = fake_mnist(tmp_path / layout, gz=gz)
        ds = load_dataset("mnist", root=tmp_path, download=False)
        assert ds.x_train.shape == (30, 784) and ds.x_test.shape == (10, 784)
        assert np.array_equal(ds.x_train.numpy().reshape(30, 28, 28), arrays["train-images-idx3-ubyte"])
        assert np.array_equal(ds.y_test.numpy(), arrays["t10k-labels-idx1-ubyte"])
        assert dataset_available("mnist", root=tmp_path)

    def test_label_count_mismatch(self, tmp_path):
        fake_mnist(tmp_path / "mnist", gz=False)
        write_idx(tmp_path / "mnist" / "t10k-labels-idx1-ubyte", np.zeros(9, dtype=np.uint8))
        with pytest.raises(DatasetError, match="9 labels for 10 images"):
            load_dataset("mnist", root=tmp_path, download=False)

    def test_offline_message_names_what_is_missing_and_how_to_get_it(self, tmp_path, monkeypatch):
        def no_network(spec, root):
            raise OSError("[Errno -3] Temporary failure in name resolution")

        monkeypatch.setattr(data, "_download", no_network)
        with pytest.raises(DatasetUnavailable) as err:
            load_dataset(
                "fashion-mnist" if not dataset_available("fashion-mnist", tmp_path) else "mnist",
                root=tmp_path,
            )
        msg = str(err.value)
        assert "could not be downloaded" in msg and "name resolution" in msg
        assert "train-images-idx3-ubyte" in msg and str(tmp_path) in msg and "digits" in msg
        assert "Traceback" not in msg

    def test_fashion_message_mentions_the_debian_package(self, tmp_path, monkeypatch):
        monkeypatch.setattr(data, "DEBIAN_DIRS", {"fashion-mnist": tmp_path / "none"})
        with pytest.raises(DatasetUnavailable, match="apt-get install dataset-fashion-mnist"):
            load_dataset("fashion-mnist", root=tmp_path, download=False)


@needs_fashion
def test_real_fashion_mnist_files():
    ds = load_dataset("fashion-mnist")
    assert ds.x_train.shape == (60000, 784) and ds.x_test.shape == (10000, 784)
    assert torch.bincount(ds.y_train).tolist() == [6000] * 10
    assert 0.27 < float(ds.x_train[:5000].float().mean()) / 255 < 0.30  # the well-known mean 0.286
    assert ds.class_names[9] == "Ankle boot"


class TestConversions:
    def test_to_float_from_uint8_and_float(self) -> None:
        from vae_core.data import to_float

        u = torch.tensor([[0, 51, 255]], dtype=torch.uint8)
        torch.testing.assert_close(to_float(u), torch.tensor([[0.0, 0.2, 1.0]]))
        f = torch.tensor([[0.25, 1.0]], dtype=torch.float64)
        assert to_float(f).dtype == torch.float32 and to_float(f).tolist() == [
            [0.25, 1.0]
        ]  # floats pass through

    def test_binarize_draws_bernoulli_pixels(self) -> None:
        from vae_core.data import binarize

        x = torch.full((20000, 3), 0.0)
        x[:, 1], x[:, 2] = 0.3, 1.0
        b = binarize(x, torch.Generator().manual_seed(0))
        assert set(b.unique().tolist()) <= {0.0, 1.0} and b.dtype == torch.float32
        assert b[:, 0].sum() == 0 and b[:, 2].mean() == 1.0
        assert abs(float(b[:, 1].mean()) - 0.3) < 4 * (0.3 * 0.7 / 20000) ** 0.5  # within 4 SE of p
        again = binarize(x, torch.Generator().manual_seed(0))
        assert torch.equal(b, again) and not torch.equal(b, binarize(x, torch.Generator().manual_seed(1)))
        u8 = binarize(torch.full((5000, 1), 255 // 2, dtype=torch.uint8), torch.Generator().manual_seed(0))
        assert 0.45 < float(u8.mean()) < 0.55
