"""One module says what a foreign file is (rankrobust.foreign), for the checkpoint reader, the
factory-weights reader and the results database alike; library errors name keyword arguments,
the command line names its flags."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from rankrobust.checkpoint import load_checkpoint
from rankrobust.errors import CheckpointError, CheckpointOptionError, ConfigError, ConfigOptionError
from rankrobust.experiments.store import ResultsStore
from rankrobust.external import probe_classes, read_state_dict
from rankrobust.foreign import PICKLE, TORCH_ZIP, sniff


@pytest.mark.parametrize(("head", "kind"), [
    (pickle.dumps({"a": 1}, protocol=2)[:8], PICKLE),
    (pickle.dumps({"a": 1}, protocol=5)[:8], PICKLE),
    (b"PK\x03\x04\x14\x00\x00\x00", TORCH_ZIP),
    (b"PK\x05\x06", TORCH_ZIP),  # an empty zip
    (b"SQLite format 3\x00", None),
    (b"\x10\x00\x00\x00\x00\x00\x00\x00{", None),  # a safetensors header length
    (b"\x80\x06", None),  # not a pickle protocol
    (b"", None),
])
def test_sniff_names_pickle_bearing_files(head: bytes, kind: str | None) -> None:
    assert sniff(head) == kind


@pytest.fixture(params=["pickle", "zip"])
def foreign_file(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "thing.bin"
    if request.param == "pickle":
        path.write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=4))
        return path, PICKLE
    torch.save({"w": torch.zeros(2)}, path)  # the zip format
    return path, TORCH_ZIP


def test_all_three_readers_name_the_same_kind(foreign_file: tuple[Path, str]) -> None:
    path, kind = foreign_file
    with pytest.raises(CheckpointError, match="refusing to unpickle") as ckpt:
        load_checkpoint(path)
    with pytest.raises(CheckpointOptionError) as weights:
        read_state_dict(path)
    with pytest.raises(ConfigError, match="not a database") as store:
        ResultsStore(path, readonly=True)
    for exc in (ckpt, weights, store):
        assert f"is {kind}" in str(exc.value), exc.value
    assert path.read_bytes()[:2] in (b"PK", b"\x80\x04")  # nothing was written to it


def test_library_errors_name_keywords_and_the_cli_renames_them(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    torch.save({"w": torch.zeros(2)}, path)
    with pytest.raises(CheckpointOptionError) as info:
        read_state_dict(path)
    assert "pass allow_torch_load=True to read" in str(info.value) and "--" not in str(info.value)
    flagged = info.value.renamed("--allow-torch-load")
    assert isinstance(flagged, CheckpointOptionError) and "pass --allow-torch-load to read" in str(flagged)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3)).eval()
    with pytest.raises(ConfigOptionError, match="gives 3 logits but num_classes is 5"):
        probe_classes(model, (1, 2, 2), 5, "net")
    with pytest.raises(ConfigOptionError, match="^in_shape 1,3,3: the model of net fails"):
        probe_classes(model, (1, 3, 3), None, "net")
    assert probe_classes(model, (1, 2, 2), 3, "net") == 3


def test_a_model_without_a_logits_tensor_is_told_how_to_pick_it() -> None:
    class Pair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x.flatten(1), self.fc(x.flatten(1))

    with pytest.raises(ConfigError, match="returns a tuple of 2, not a logits tensor; pass"):
        probe_classes(Pair().eval(), (1, 2, 2), None, "pair")
