"""Issue 5's membership-inference audit: the loss-threshold attack's ROC-AUC on the Diginetica
sample without DP and with session-level DP-SGD at two noise levels.

The train sessions of the benchmark protocol are halved at random (``split_members``): GRU4Rec
(``conf/model/gru4rec.yaml``) is trained, centralized, on one half (the members) and the attacker
must tell them from the other half (never trained on, same distribution). Every model trains the
same fixed number of epochs with no early stopping, the attacker's best case: a model kept
training after it stopped improving has had the most time to memorize. Two non-DP rows show
the configured model (its dropout, `conf/model/gru4rec.yaml`) and the same without dropout (the
DP rows' setting: dropout does not protect anyone formally, so the DP rows do without it). Test
Recall@20 (the protocol's test split) says what each setting costs; ε is at δ = 1e-5 (below
1 / members).

    .venv/bin/python benchmarks/membership_inference.py            # the benchmark
    .venv/bin/python benchmarks/membership_inference.py --quick    # smoke run (2 epochs)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from common import RESULTS, data_source, plain, train_config
from fedbench import finish_meta, run_meta

from fedpath.data.cases import expand_prefixes
from fedpath.data.protocol import ProtocolConfig
from fedpath.evaluate import evaluate
from fedpath.models.registry import build_model
from fedpath.privacy.dp.client import session_epsilon
from fedpath.privacy.dp.config import SessionDP
from fedpath.privacy.dp.session import SessionDPSGD
from fedpath.privacy.membership import loss_threshold_auc, split_members
from fedpath.report import print_table
from fedpath.runfolder import write_json
from fedpath.simulations.pipeline import prepare

DELTA = 1e-5
CLIP = 1.0
SAMPLE_RATE = 0.25  # about 86 of the 344 member sessions per step, 4 steps an epoch
NOISE_LEVELS = (3.0, 10.0)  # ε about 3.2 and 0.8 over 15 epochs
COLUMNS = ("setting", "noise", "epsilon", "attack_auc", "test_recall@20", "train_seconds")


def _row(setting: str, model_params: dict[str, Any], private: SessionDP | None, data, halves):
    members, others = halves
    started = time.perf_counter()
    extra = {} if private is None else {"private": SessionDPSGD(private)}
    model = build_model("gru4rec", n_items=data.split.n_items, **model_params, **extra)
    model.fit(expand_prefixes(members, max_len=model_params["max_len"]))
    seconds = time.perf_counter() - started
    epochs = model_params["epochs"]
    return {
        "setting": setting,
        "noise": None if private is None else private.noise_multiplier,
        "epsilon": None
        if private is None
        else session_epsilon(private, epochs=epochs, delta=DELTA),
        "attack_auc": loss_threshold_auc(model, members, others),
        "test_recall@20": evaluate(model, data.test, ks=(20,))["recall@20"],
        "train_seconds": seconds,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15, help="training epochs of every model")
    parser.add_argument("--seed", type=int, default=0, help="member split and initialisation")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 epochs")
    args = parser.parse_args(argv)
    started, meta = time.perf_counter(), run_meta("membership_inference.py", argv)
    torch.set_num_threads(1)  # busy cores: one thread trains faster than two that wait
    cfg = train_config(["data=diginetica", "model=gru4rec"])
    with tempfile.TemporaryDirectory() as folder:
        data = prepare(data_source(cfg.data), ProtocolConfig(**plain(cfg.protocol)), Path(folder))
    halves = split_members(data.split.train, args.seed)
    configured = {k: v for k, v in plain(cfg.model).items() if k != "name"}
    configured |= {"epochs": 2 if args.quick else args.epochs, "seed": args.seed}
    bare = {**configured, "dropout": 0.0}
    rows = [
        _row("no DP, configured dropout", configured, None, data, halves),
        _row("no DP, no dropout", bare, None, data, halves),
    ]
    for sigma in NOISE_LEVELS:
        settings = SessionDP(noise_multiplier=sigma, clip_norm=CLIP, sample_rate=SAMPLE_RATE)
        rows.append(_row(f"session DP-SGD, sigma {sigma}", bare, settings, data, halves))
    print_table(rows, list(COLUMNS), title="loss-threshold membership inference, Diginetica")
    name = "membership_inference-quick.json" if args.quick else "membership_inference.json"
    write_json(
        RESULTS / name,
        {
            **finish_meta(meta, started),
            "members": len(halves[0]),
            "non_members": len(halves[1]),
            "delta": DELTA,
            "clip_norm": CLIP,
            "sample_rate": SAMPLE_RATE,
            "model": bare,
            "rows": rows,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
