"""What locking a tower saves (lesson 10): seconds per contrastive step of each LiT setting.

A locked tower is a fixed function, so ``ContrastiveModel`` computes its
features once and reuses them; an unlocked one runs forwards and backwards on
every step. This times one step of each setting on the same pairs and the same
pretrained image tower, in alternating rounds so that a shared machine's load
falls on all of them alike, and prints each one's best round and its ratio to
``Lu`` with the cache:

    Lu (cached)      the locked image tower's features computed once
    Lu (recomputed)  the same setting with the cache off: the locked tower runs every step
    Uu, uu           the image tower trained (pretrained start, or random)
    LL, LU           all-MiniLM-L6-v2 as the text tower, locked (cached) or fine-tuned

    .venv/bin/python benchmarks/bench_lit.py                  # smoke sizes
    .venv/bin/python benchmarks/bench_lit.py --budget cpu --rounds 5
"""
from __future__ import annotations

import argparse
import copy

import torch

from lmcourse import lit, runtime
from lmcourse.data import shapes
from lmcourse.models.clip import ContrastiveModel, ImageTower, TextTower


def _model(setting: str, image_tower: ImageTower, minilm_factory, width: int) -> ContrastiveModel:
    tower = copy.deepcopy(image_tower) if setting[0] != "u" else ImageTower(width)
    text = TextTower(width) if setting[1] == "u" else minilm_factory(setting[1] == "U")
    return ContrastiveModel(tower, text, tower.width, lock_image=setting[0] == "L", lock_text=setting[1] == "L")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="smoke", help="smoke (default), cpu or gpu: the towers' sizes")
    parser.add_argument("--steps", type=int, default=10, help="contrastive steps per timed round (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; each setting keeps its best")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1: a shared machine)")
    parser.add_argument("--no-minilm", action="store_true", help="skip LL and LU (no MiniLM load)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    b = runtime.budget(args.budget)
    data = shapes.make_lit_data(b.lit_pretrain_images, b.lit_pairs, b.lit_test_images, seed=0)
    torch.manual_seed(0)
    image_tower = ImageTower(b.lit_width)
    lit.pretrain_image_tower(image_tower, data.pretrain, max(1, b.lit_pretrain_steps // 10), b.lit_batch,
                             b.learning_rate)  # a short pretraining: only the speed is measured
    settings = ["Lu (cached)", "Lu (recomputed)", "Uu", "uu"]
    minilm_factory = None
    if not args.no_minilm:
        from lmcourse.models.clip_minilm import MiniLMTextTower
        locked_minilm = MiniLMTextTower(trainable=False)  # loaded once; its caption cache persists across rounds

        def minilm_factory(trainable: bool):
            return MiniLMTextTower(trainable=True) if trainable else locked_minilm
        settings += ["LL", "LU"]
    best = {s: float("inf") for s in settings}
    for _ in range(args.rounds):
        for name in settings:
            setting = name.split()[0]
            model = _model(setting, image_tower, minilm_factory, b.lit_width)
            batch = b.lit_minilm_batch if setting == "LU" else b.lit_batch
            run = lit.train_contrastive(model, data.pairs, args.steps, batch, b.learning_rate,
                                        cache=name != "Lu (recomputed)")
            best[name] = min(best[name], run["seconds_per_step"])
    base = best["Lu (cached)"]
    print(f"budget {b.name}: {len(data.pairs)} pairs, batch {b.lit_batch} (LU: {b.lit_minilm_batch}), "
          f"width {b.lit_width}, {args.steps} steps x {args.rounds} rounds, {args.threads} thread(s)")
    print(f"{'setting':18s}{'ms/step':>10s}{'x Lu cached':>13s}")
    for name in settings:
        print(f"{name:18s}{1000 * best[name]:10.2f}{best[name] / base:13.1f}")
    print(f"the cache makes Lu {best['Lu (recomputed)'] / base:.1f}x faster than recomputing the locked tower")


if __name__ == "__main__":
    main()
