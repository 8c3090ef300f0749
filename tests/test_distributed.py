"""lmcourse.distributed: DDP and FSDP under torchrun on 2 gloo processes; MirroredStrategy."""
import json
import math
import multiprocessing as mp
import os
import re
import socket
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from lmcourse import runtime
from lmcourse.distributed import full_state, init_process, run, sharded_batches, train_gpt

B = runtime.budget("smoke")


def torchrun(tmp_path, strategy: str = "ddp") -> tuple[str, dict, dict]:
    """One step of `python -m lmcourse.distributed` on 2 processes: stdout, report, weights."""
    save, report = tmp_path / f"{strategy}.pt", tmp_path / f"{strategy}.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "lmcourse.distributed", "--budget", "smoke", "--steps", "1", "--strategy", strategy,
           "--save", str(save), "--report", str(report)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout, json.loads(report.read_text()), torch.load(save, weights_only=True)


@pytest.fixture(scope="module")
def one_process():
    """One process, one step, on the combined batch of both ranks (2 x batch_size windows)."""
    torch.set_num_threads(1)
    model, _ = train_gpt(B, 1, batch_size=2 * B.batch_size, world_size=1)
    return full_state(model)


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


def test_ddp_step_on_two_processes_equals_one_process_on_the_combined_batch(tmp_path, one_process):
    out, report, weights = torchrun(tmp_path, "ddp")
    assert "world size 2, backend gloo" in out
    loss = float(re.search(r"final train loss (\S+),", out).group(1))
    assert math.isfinite(loss) and report["world_size"] == 2 and report["global_batch"] == 2 * B.batch_size
    assert max_diff(weights, one_process) < 1e-6
    # The check can fail: one process on only rank 0's half of the batch ends elsewhere.
    half, _ = train_gpt(B, 1, batch_size=B.batch_size, world_size=1)
    assert max_diff(full_state(half), one_process) > 1e-4


def _fsdp_rank(rank: int, port: int, folder: str) -> None:
    """One rank of a 2-process FSDP job, forked from the test: no torchrun, no second import of torch."""
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    proc = init_process(timeout_s=60)
    try:
        report = run(proc, B, 1, strategy="fsdp", save=f"{folder}/fsdp.pt")
        if rank == 0:
            Path(folder, "fsdp.json").write_text(json.dumps(asdict(report)))
    finally:
        dist.destroy_process_group()


def test_fsdp_shards_parameters_and_matches_one_process(tmp_path, one_process):
    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ranks = [mp.get_context("fork").Process(target=_fsdp_rank, args=(r, port, str(tmp_path))) for r in (0, 1)]
    for p in ranks:
        p.start()
    for p in ranks:
        p.join(timeout=180)
    assert [p.exitcode for p in ranks] == [0, 0]
    report = json.loads((tmp_path / "fsdp.json").read_text())
    assert report["world_size"] == 2 and report["strategy"] == "fsdp"
    weights = torch.load(tmp_path / "fsdp.pt", weights_only=True)
    assert max_diff(weights, one_process) < 1e-6  # gathered from both shards
    full_bytes = sum(t.numel() * t.element_size() for name, t in one_process.items()
                     if name != "head.weight")  # tied to tok_emb.weight: one matrix
    # Each rank holds about half (FSDP pads each parameter to split evenly); DDP holds all of it.
    assert 0.45 < report["param_bytes_per_rank"] / full_bytes < 0.6


def test_sharded_batches_split_one_global_batch():
    data = {"train": torch.arange(500), "val": torch.arange(200)}
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    whole_x, whole_y = sharded_batches(data, 6, 8, rank=0, world_size=1)("train", gen())
    parts = [sharded_batches(data, 3, 8, rank=r, world_size=2)("train", gen()) for r in (0, 1)]
    assert torch.equal(torch.cat([p[0] for p in parts]), whole_x)
    assert torch.equal(torch.cat([p[1] for p in parts]), whole_y)
    with pytest.raises(ValueError, match="rank must be in 0..1"):
        sharded_batches(data, 3, 8, rank=2, world_size=2)


def test_outside_torchrun_the_error_says_how_to_launch(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError, match="this runs under torchrun, e.g. `torchrun --standalone"):
        init_process()


def test_mirrored_strategy_fits_the_keras_lstm():
    from lmcourse.distributed import fit_mirrored

    tf = runtime.setup_tensorflow()
    result = fit_mirrored(B.replace(rnn_hidden=16, n_embd=8), steps=2, per_replica_batch=4, verbose=False)
    replicas = max(1, len(tf.config.list_logical_devices("GPU")))
    assert result["replicas"] == replicas and result["global_batch"] == 4 * replicas
    assert math.isfinite(result["train_loss"]) and math.isfinite(result["val_loss"])
