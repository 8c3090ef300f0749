"""Data-parallel training on torch.distributed, launched by torchrun.

    torchrun --standalone --nproc_per_node 2 -m lmcourse.distributed --steps 20

starts two processes (ranks) on this machine. Each holds a whole copy of the
course GPT and trains it with the course's one loop, ``lmcourse.train.train``,
on its own share of every batch; DistributedDataParallel (DDP) averages the
gradients across ranks during the backward pass, so every rank takes the same
optimizer step and the copies stay identical (Li et al., 2020, "PyTorch
Distributed"). The backend is NCCL on GPUs (one GPU per rank, cuda:LOCAL_RANK)
and gloo on the CPU. The same command runs on several machines: on each of
two nodes,

    torchrun --nnodes 2 --nproc_per_node 8 --node_rank R \\
             --rdzv_backend c10d --rdzv_endpoint HOST:29500 -m lmcourse.distributed

``--strategy fsdp`` shards instead of replicating: with FSDP (PyTorch's
``fully_shard``, Zhao et al., 2023, after ZeRO-3, Rajbhandari et al., 2020)
each rank keeps 1/world_size of the parameters, gradients and Adam state,
and gathers a block's full weights only while it computes with them.

How the ranks share a batch: every rank seeds the same generator, draws the
same *global* batch of ``batch_size * world_size`` windows and keeps its own
slice. The ranks thus agree on the data without talking to each other, and
one step on N ranks is exactly one step of one process on the whole global
batch (``tests/test_distributed.py`` checks this to 1e-6). Drawing a different
stream per rank (seed + rank) would train as well, but no single-process run
would reproduce it.

``fit_mirrored`` is TensorFlow's counterpart: ``tf.distribute.MirroredStrategy``
replicates the course's Keras LSTM on every visible GPU (or the one CPU) and
all-reduces its gradients the same way.
"""
from __future__ import annotations

import argparse
import datetime
import math
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass

import torch
import torch.distributed as dist

from lmcourse import atomic, runtime
from lmcourse.data.batching import random_windows
from lmcourse.models.gpt import GPT, GPTConfig
from lmcourse.train import GetBatch, History, TrainConfig, train
from lmcourse.validate import positive_int

__all__ = ["STRATEGIES", "Process", "Report", "init_process", "sharded_batches", "course_gpt", "wrap",
           "local_parameter_bytes", "train_gpt", "full_state", "run", "main", "fit_mirrored"]

STRATEGIES = ("ddp", "fsdp")
LAUNCH = "torchrun --standalone --nproc_per_node 2 -m lmcourse.distributed"


@dataclass(frozen=True)
class Process:
    """Where this process sits in the job, as torchrun describes it in the environment."""

    rank: int  # 0 .. world_size - 1 over all machines
    world_size: int
    local_rank: int  # index on this machine: picks the GPU
    backend: str  # "nccl" on GPUs, "gloo" on the CPU
    device: torch.device


def init_process(timeout_s: float = 300.0) -> Process:
    """Join the job torchrun started: read RANK, WORLD_SIZE, LOCAL_RANK, open the process group.

    A rank that waits longer than ``timeout_s`` for the others (one died, say)
    gives up with an error instead of hanging.
    """
    missing = [k for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
               if k not in os.environ]
    if missing:
        raise RuntimeError(f"{', '.join(missing)} not set: this runs under torchrun, "
                           f"e.g. `{LAUNCH} --steps 20`")
    rank, world, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    if torch.cuda.is_available():
        if local >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} GPU(s) here: "
                               "use --nproc_per_node at most the number of GPUs")
        backend, device = "nccl", torch.device("cuda", local)
        torch.cuda.set_device(device)  # NCCL calls use the current device
    else:
        backend, device = "gloo", torch.device("cpu")
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return Process(rank, world, local, backend, device)


def sharded_batches(splits: dict[str, torch.Tensor], batch_size: int, block_size: int,
                    rank: int, world_size: int) -> GetBatch:
    """``get_batch(split, generator)`` giving rank ``rank`` its slice of one global batch.

    The global batch is ``batch_size * world_size`` random windows drawn with
    ``generator`` (the same on every rank); this rank keeps windows
    ``rank * batch_size`` to ``(rank + 1) * batch_size``. ``splits`` maps a
    split's name ("train", "val") to its 1-D token ids.
    """
    positive_int("batch_size", batch_size)
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in 0..{world_size - 1}, got {rank}")
    lo, hi = rank * batch_size, (rank + 1) * batch_size

    def get_batch(split: str, generator: torch.Generator):
        if split not in splits:
            raise KeyError(f"split must be one of {sorted(splits)}, got {split!r}")
        x, y = random_windows(splits[split], batch_size * world_size, block_size, generator=generator)
        return x[lo:hi], y[lo:hi]

    return get_batch


def course_gpt(b: runtime.Budget, vocab_size: int) -> GPT:
    """The lessons' GPT at budget ``b`` (lesson 06's shape)."""
    return GPT(GPTConfig(vocab_size=vocab_size, block_size=b.block_size, n_layer=b.n_layer,
                         n_head=b.n_head, n_embd=b.n_embd))


def wrap(model: GPT, strategy: str, device: torch.device) -> torch.nn.Module:
    """The model in DDP (a replica per rank) or FSDP2 (a shard per rank)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(map(repr, STRATEGIES))}, got {strategy!r}")
    model.to(device)
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP

        # DDP copies rank 0's weights to every rank here, then all-reduces gradients in
        # buckets of about 25 MB, each launched as soon as backward has filled it.
        return DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    from torch.distributed.fsdp import fully_shard

    # Shard each block separately, then the rest (embedding, tied head, final norm):
    # a rank gathers one block's full weights at a time, uses them, and frees them.
    for block in model.blocks:
        fully_shard(block)
    fully_shard(model)
    # FSDP2 warns about outputs that are views: here those are the KV-cache tensors
    # every block returns, which training never modifies in place.
    warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* returned a view tensor")
    return model


def local_parameter_bytes(model: torch.nn.Module) -> int:
    """Bytes of parameters this rank holds: everything under DDP, its shard under FSDP."""
    total = 0
    for p in model.parameters():
        local = p.to_local() if hasattr(p, "to_local") else p  # a sharded DTensor's own piece
        total += local.numel() * local.element_size()
    return total


def train_gpt(b: runtime.Budget, steps: int, *, batch_size: int | None = None, seed: int = 0,
              rank: int = 0, world_size: int = 1, strategy: str | None = None,
              device: torch.device | str = "cpu", progress: bool = False
              ) -> tuple[torch.nn.Module, History]:
    """Train the course GPT on Shakespeare characters as rank ``rank`` of ``world_size``.

    ``batch_size`` is per rank (default ``b.batch_size``); the global batch is
    ``batch_size * world_size``. ``strategy`` "ddp" or "fsdp" wraps the model
    (a process group must be open); None trains it plainly, which with
    ``world_size=1`` is the single-process reference. Returns the model
    (wrapped, if it was) and its History; History losses are this rank's.
    """
    from lmcourse.scoreboard import char_data

    steps = positive_int("steps", steps)
    batch_size = positive_int("batch_size", batch_size if batch_size is not None else b.batch_size)
    device = torch.device(device)
    data = char_data(b, device="cpu")
    get_batch = sharded_batches({s: data.batches.splits[s] for s in ("train", "val")},
                                batch_size, b.block_size, rank, world_size)
    runtime.seed_everything(seed)  # the same initial weights on every rank (FSDP needs it)
    model = course_gpt(b, data.vocab_size)
    if strategy is not None:
        model = wrap(model, strategy, device)
    config = TrainConfig(steps=steps, lr=b.gpt_learning_rate, warmup_steps=min(steps, max(1, steps // 10)),
                         eval_interval=b.eval_interval, eval_batches=b.eval_batches,
                         log_interval=min(steps, 10), seed=seed, progress=progress)
    history = train(model, get_batch, config, device=device)
    return model, history


def full_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's weights on the CPU, plain names, as one process would have them.

    Under FSDP every rank must call it: each shard is gathered from all ranks.
    """
    inner = model.module if hasattr(model, "module") else model  # DDP keeps the model in .module
    state = {}
    for name, t in inner.state_dict().items():
        if hasattr(t, "full_tensor"):
            t = t.full_tensor()
        state[name] = t.detach().cpu().clone()
    return state


@dataclass
class Report:
    """What rank 0 prints at the end of a run."""

    world_size: int
    backend: str
    device: str
    strategy: str
    threads: int
    steps: int
    global_batch: int
    tokens_per_s: float  # all ranks together
    train_loss: float  # mean of the last steps' losses, averaged over ranks (the global batch)
    val_loss: float  # the last evaluation, averaged over ranks
    val_loss_start: float  # the evaluation before the first step, averaged over ranks
    param_bytes_per_rank: int
    seconds: float


def _mean_over_ranks(value: float, device: torch.device) -> float:
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.item() / dist.get_world_size()


def run(proc: Process, b: runtime.Budget, steps: int, *, strategy: str = "ddp", threads: int = 1,
        seed: int = 0, batch_size: int | None = None, save: str | None = None) -> Report:
    """Train as one rank of the job; every rank returns the same Report."""
    torch.set_num_threads(positive_int("threads", threads))
    start = time.perf_counter()
    model, history = train_gpt(b, steps, batch_size=batch_size, seed=seed, rank=proc.rank,
                               world_size=proc.world_size, strategy=strategy, device=proc.device,
                               progress=False)
    batch_size = batch_size or b.batch_size
    last = history.train[-1]
    # Throughput of the job: every rank's tokens over the slowest rank's training time.
    counts = torch.tensor([float(last["tokens"]), last["elapsed"]], dtype=torch.float64, device=proc.device)
    tokens, elapsed = counts.clone(), counts.clone()
    dist.all_reduce(tokens, op=dist.ReduceOp.SUM)
    dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)
    val = _mean_over_ranks(history.val[-1]["loss"], proc.device) if history.val else math.nan
    val_start = _mean_over_ranks(history.val[0]["loss"], proc.device) if history.val else math.nan
    state = full_state(model) if save else None  # collective under FSDP: all ranks gather
    report = Report(
        world_size=proc.world_size, backend=proc.backend, device=str(proc.device), strategy=strategy,
        threads=threads, steps=steps, global_batch=batch_size * proc.world_size,
        tokens_per_s=tokens[0].item() / elapsed[1].item(),
        train_loss=_mean_over_ranks(history.final_train_loss, proc.device), val_loss=val,
        val_loss_start=val_start,
        param_bytes_per_rank=local_parameter_bytes(model),
        seconds=time.perf_counter() - start)
    if save and proc.rank == 0:
        atomic.torch_save(state, save)
    return report


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m lmcourse.distributed",
        description=f"Train the course GPT with data parallelism. Launch with: {LAUNCH} --steps 20")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the budget's dist_steps)")
    p.add_argument("--budget", default=None, help="smoke, cpu or gpu (default: the budget in force)")
    p.add_argument("--strategy", choices=STRATEGIES, default="ddp")
    p.add_argument("--threads", type=int, default=1, help="CPU threads per process (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=None, help="windows per rank (default: the budget's)")
    p.add_argument("--save", default=None, help="rank 0 writes the final weights here (torch.save)")
    p.add_argument("--report", default=None, help="rank 0 writes the summary here as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    b = runtime.budget(args.budget)
    steps = args.steps if args.steps is not None else b.dist_steps
    proc = init_process()
    try:
        report = run(proc, b, steps, strategy=args.strategy, threads=args.threads, seed=args.seed,
                     batch_size=args.batch_size, save=args.save)
        if proc.rank == 0:
            print(f"world size {report.world_size}, backend {report.backend}, device {report.device}, "
                  f"strategy {report.strategy}, {report.threads} thread(s) per rank, budget {b.name}")
            print(f"{report.steps} steps, global batch {report.global_batch} x {b.block_size} tokens: "
                  f"{report.tokens_per_s:,.0f} tokens/s")
            print(f"parameters per rank {report.param_bytes_per_rank:,} bytes")
            print(f"final train loss {report.train_loss:.4f}, val loss {report.val_loss:.4f}")
            if args.report:
                atomic.write_json(args.report, asdict(report))
        dist.barrier()  # rank 0 has written its files before anyone leaves
    except BaseException as error:
        print(f"[rank {proc.rank}/{proc.world_size}] failed: {type(error).__name__}: {error}",
              file=sys.stderr, flush=True)
        raise
    finally:
        dist.destroy_process_group()
    return 0


# ---------------------------------------------------------------------------
# TensorFlow: the same idea, one process, one replica per GPU


def fit_mirrored(b: runtime.Budget | None = None, steps: int | None = None,
                 per_replica_batch: int | None = None, verbose: bool = True) -> dict:
    """Fit the course's Keras LSTM under ``tf.distribute.MirroredStrategy``.

    MirroredStrategy keeps one replica of the model per visible GPU (the one
    CPU when there is none), splits each global batch of
    ``per_replica_batch * num_replicas_in_sync`` windows between them and
    all-reduces the gradients: DDP's scheme inside one process. Returns the
    replica count, global batch, the last training loss and the val loss (nats).
    """
    from lmcourse.scoreboard import char_data

    b = runtime.budget(b)
    steps = positive_int("steps", steps if steps is not None else b.keras_steps)
    per_replica = positive_int("per_replica_batch", per_replica_batch or b.batch_size)
    tf = runtime.setup_tensorflow()
    from lmcourse.models.keras_rnn import build_keras_lm, compile_for_lm, make_lm_dataset

    data = char_data(b, device="cpu")
    strategy = tf.distribute.MirroredStrategy()
    replicas = strategy.num_replicas_in_sync
    global_batch = per_replica * replicas
    with strategy.scope():  # variables created here are mirrored on every replica
        model = compile_for_lm(build_keras_lm(data.vocab_size, b.n_embd, b.rnn_hidden, cell="lstm"),
                               lr=b.learning_rate)
    train_ds = make_lm_dataset(data.batches.splits["train"], b.block_size, global_batch, seed=0).repeat()
    val_ds = make_lm_dataset(data.batches.splits["val"], b.block_size, global_batch, shuffle=False)
    fit = model.fit(train_ds, steps_per_epoch=steps, epochs=1, shuffle=False, verbose=0)
    val = float(model.evaluate(val_ds, verbose=0))
    result = {"replicas": replicas, "devices": list(strategy.extended.worker_devices),
              "global_batch": global_batch, "steps": steps,
              "train_loss": float(fit.history["loss"][-1]), "val_loss": val}
    if verbose:
        print(f"MirroredStrategy: num_replicas_in_sync {replicas} on {', '.join(result['devices'])}; "
              f"global batch {global_batch} = {per_replica} x {replicas}; {steps} steps: "
              f"train loss {result['train_loss']:.4f}, val loss {val:.4f}")
    return result


if __name__ == "__main__":
    sys.exit(main())
