"""Data loaders, read through the real code paths on small files the tests write."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from rankrobust.data import DATASETS, load_dataset
from rankrobust.data.idx import read_idx, write_idx
from rankrobust.data.mnist5k import stratified_split
from rankrobust.errors import DataError


def _write_mnist(folder: Path, n_train: int = 12, n_test: int = 6, gz: bool = True) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        suffix = ".gz" if gz else ""
        write_idx(folder / f"{split}-images-idx3-ubyte{suffix}", images)
        write_idx(folder / f"{split}-labels-idx1-ubyte{suffix}", labels)
        arrays[split] = images
        arrays[f"{split}-labels"] = labels
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx_roundtrip_through_loader(tmp_path: Path, gz: bool) -> None:
    arrays = _write_mnist(tmp_path, gz=gz)
    x, y = load_dataset("mnist", "train", tmp_path)
    assert x.shape == (12, 1, 28, 28) and x.dtype == torch.float32
    assert y.dtype == torch.int64
    assert torch.allclose(x[:, 0] * 255, torch.from_numpy(arrays["train"]).float())
    assert torch.equal(y, torch.from_numpy(arrays["train-labels"]).long())
    xt, _ = load_dataset("mnist", "test", tmp_path)
    assert xt.shape == (6, 1, 28, 28)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


def test_fashion_mnist_from_data_dir(tmp_path: Path) -> None:
    _write_mnist(tmp_path / "fashion-mnist")
    x, y = load_dataset("fashion-mnist", "test", tmp_path)
    assert x.shape == (6, 1, 28, 28) and y.shape == (6,)


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="Debian's dataset-fashion-mnist is not installed (.ci/run installs it)")
def test_system_fashion_mnist_is_the_full_dataset() -> None:
    """The paper preset's data: 60,000 / 10,000 images in [0, 1], ten balanced classes."""
    x, y = load_dataset("fashion-mnist", "test")
    assert x.shape == (10_000, 1, 28, 28) and x.dtype == torch.float32
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert torch.bincount(y, minlength=10).tolist() == [1000] * 10
    xtr, ytr = load_dataset("fashion-mnist", "train")
    assert xtr.shape == (60_000, 1, 28, 28) and torch.bincount(ytr).tolist() == [6000] * 10


def test_truncated_idx_is_a_clear_error(tmp_path: Path) -> None:
    _write_mnist(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_dataset("mnist", "train", tmp_path)


def test_corrupt_gzip_and_bad_magic(tmp_path: Path) -> None:
    bad_gz = tmp_path / "a.gz"
    bad_gz.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + b"\x00\x00\x00\x05abc")[:-6])
    with pytest.raises(DataError, match="gzip"):
        read_idx(bad_gz)
    junk = tmp_path / "junk"
    junk.write_bytes(b"hello world, not idx")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(junk)


def test_missing_dataset_says_where_and_how(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_dataset("mnist", "train", tmp_path)
    msg = str(info.value)
    assert str(tmp_path) in msg and "IDX" in msg and "\n" not in msg
    with pytest.raises(DataError, match="cifar10"):
        load_dataset("cifar10", "train", tmp_path)


def _write_cifar(folder: Path, per_batch: int = 4) -> tuple[np.ndarray, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    xs, ys = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=per_batch).tolist()
        with open(folder / name, "wb") as fh:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": b"x"}, fh, protocol=2)
        if name != "test_batch":
            xs.append(data)
            ys += labels
    return np.concatenate(xs), np.array(ys)


def test_cifar10_python_batches(tmp_path: Path) -> None:
    data, labels = _write_cifar(tmp_path / "cifar-10-batches-py")
    x, y = load_dataset("cifar10", "train", tmp_path)
    assert x.shape == (20, 3, 32, 32)
    assert torch.equal(y, torch.from_numpy(labels))
    # channel-major layout: the first 1024 bytes are the red plane
    assert torch.allclose(x[0, 0].flatten() * 255, torch.from_numpy(data[0, :1024]).float())
    xt, _ = load_dataset("cifar10", "test", tmp_path)
    assert xt.shape == (4, 3, 32, 32)


class _Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("pwned",))


def test_cifar_hostile_pickle_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_cifar(tmp_path)
    with open(tmp_path / "test_batch", "wb") as fh:
        pickle.dump({b"data": _Boom(), b"labels": [1]}, fh)
    with pytest.raises(DataError, match="refusing to load global"):
        load_dataset("cifar10", "test", tmp_path)
    assert "pwned" not in capsys.readouterr().out


def test_cifar_truncated_batch(tmp_path: Path) -> None:
    _write_cifar(tmp_path)
    path = tmp_path / "data_batch_3"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match="data_batch_3"):
        load_dataset("cifar10", "train", tmp_path)


def test_mnist5k_is_real_stratified_and_fixed() -> None:
    x, y = load_dataset("mnist5k", "train")
    xt, yt = load_dataset("mnist5k", "test")
    assert x.shape == (4000, 1, 28, 28) and xt.shape == (1000, 1, 28, 28)
    assert torch.bincount(y).tolist() == [400] * 10
    assert torch.bincount(yt).tolist() == [100] * 10
    assert float(x.mean()) == pytest.approx(0.13, abs=0.02)
    x2, y2 = load_dataset("mnist5k", "train")
    assert torch.equal(x, x2) and torch.equal(y, y2)


def _contents(x: torch.Tensor) -> list[bytes]:
    """Each image's bytes: two splits share an example iff they share an entry."""
    flat = x.reshape(len(x), -1).contiguous().numpy()
    return [row.tobytes() for row in flat]


@pytest.mark.parametrize("name", ["mnist5k", "synthetic"])
def test_every_split_is_disjoint_by_content(name: str) -> None:
    """train (after holding out validation), validation and test share no image: compared by
    content, not by index or statistics, so a test image copied into training is caught."""
    from rankrobust.training.fit import split_validation

    train = load_dataset(name, "train")
    test = load_dataset(name, "test")
    (xt, yt), (xv, yv) = split_validation(train, len(train[0]) // 8)
    splits = {"train": _contents(xt), "validation": _contents(xv), "test": _contents(test[0])}
    for split, rows in splits.items():
        assert len(set(rows)) == len(rows), f"{name} {split} holds the same image twice"
    seen: dict[bytes, str] = {}
    for split, rows in splits.items():
        for row in rows:
            assert row not in seen, f"{name}: an image is in both {seen[row]} and {split}"
            seen[row] = split
    # the held-out split is a partition of train: nothing lost, nothing invented, labels kept
    assert sorted(splits["train"] + splits["validation"]) == sorted(_contents(train[0]))
    label_of = dict(zip(_contents(train[0]), train[1].tolist(), strict=True))
    assert [label_of[r] for r in splits["validation"]] == yv.tolist()
    assert [label_of[r] for r in splits["train"]] == yt.tolist()


def test_stratified_split_partitions() -> None:
    y = np.repeat(np.arange(3), 10)
    tr, te = stratified_split(y, 0.2, seed=3)
    assert sorted(np.concatenate([tr, te]).tolist()) == list(range(30))
    assert np.bincount(y[te]).tolist() == [2, 2, 2]


def test_synthetic_is_deterministic_and_in_range() -> None:
    a, b = load_dataset("synthetic", "train"), load_dataset("synthetic", "train")
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[0].min() >= 0 and a[0].max() <= 1
    assert tuple(a[0].shape[1:]) == DATASETS["synthetic"].in_shape


def test_unknown_dataset_and_split() -> None:
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset("imagenet", "train")
    with pytest.raises(DataError, match="unknown split"):
        load_dataset("synthetic", "validation")
