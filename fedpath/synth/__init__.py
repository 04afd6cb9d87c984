"""``fedpath synth``: the embedded default log, calibrated on real samples, labelled synthetic.

``make demo`` must run with no data on the machine, so fedpath ships a generator of shopping
paths whose popularity, transitions, funnel, session lengths, categories, gaps and prices are
figures measured on the public samples (see ``fedpath.synth.config``).
"""

from fedpath.synth.config import SynthConfig
from fedpath.synth.generate import generate, iter_chunks
from fedpath.synth.measure import LogStatistics, measure_log
from fedpath.synth.output import (
    META_SUFFIX,
    SYNTHETIC_PREFIX,
    meta_path,
    run_synth,
    write_synthetic,
)

__all__ = [
    "META_SUFFIX",
    "SYNTHETIC_PREFIX",
    "LogStatistics",
    "SynthConfig",
    "generate",
    "iter_chunks",
    "measure_log",
    "meta_path",
    "run_synth",
    "write_synthetic",
]
