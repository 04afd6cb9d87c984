"""Every key the server and the partners exchange, named once so the two sides cannot drift.

Values travel in Flower's legacy ``FitIns.config`` / ``EvaluateIns.config`` (server to partner)
and in the ``metrics`` of ``FitRes`` / ``EvaluateRes`` (partner to server).
"""

from __future__ import annotations

# Set by Flower's simulation engine in each node's ``node_config``; a real SuperNode is started
# with ``--node-config 'partition-id=<i>'``.
PARTITION_ID = "partition-id"

# Coordinator -> every node (a deployed run's ``--run-config``, read from ``context.run_config``):
# the campaign the run belongs to; a partner keys its privacy ledger charges by it.
CAMPAIGN_KEY = "fedpath-campaign"

# Server -> partner (fit config)
SERVER_ROUND = "server-round"
LOCAL_EPOCHS = "local-epochs"
PROXIMAL_MU = "proximal_mu"  # the name Flower's FedProx writes; it is not ours to rename
COUNT_SCALE = "count-scale"  # the public bound S of the secure count sum (see strategies)
TASK = "task"  # what a fit asks for: TRAIN_TASK (absent = train) or one of the tasks below
TRAIN_TASK = "train"
FUNNEL_TASK = "funnel"  # send the partner's funnel counts, encoded for the secure sum
FUNNEL_CHANNELS = "funnel-channels"  # JSON list of the channels the funnel counts per channel
# True: the funnel fit carries the global model; add the predicted vs actual conversion of the
# partner's test sessions (fedpath.metrics.funnel.conversion_sums), calibrated by TEMPERATURES.
FUNNEL_FORECAST = "funnel-forecast"
# The calibration round (server/calibration_round.py), on the partner's valid cases scored by
# the global model the fit carries: first the NLL sums on the temperature grid, then, given the
# fitted TEMPERATURES, the review gate's counts per candidate cutoff of REVIEW_THRESHOLD.
NLL_TASK = "calibration-nll"
GATE_COUNTS_TASK = "calibration-gate-counts"
TEMPERATURES = "temperatures"  # JSON {"action": T, "convert": T}; absent in a funnel = raw
REVIEW_THRESHOLD = "review-threshold"
# Under pair_cells: auto (server/pair_size_round.py): first each partner sends its number of
# distinct observed pairs for the secure sum, then the count round carries the agreed PAIR_CELLS.
PAIRS_TASK = "distinct-pairs"
PAIR_CELLS = "pair-cells"
# A training fit's item rows: "seen" = zero the rows of items absent from the partner's train
# data and append their mask (strategies/seen_rows.py); absent = send the table whole.
ITEM_ROWS = "item-rows"
SEEN_ROWS = "seen"

# Server -> partner (evaluate config)
EVAL_SPLIT = "eval-split"

# Partner -> server (fit and evaluate metrics)
PARTNER = "partner"  # which partner answered: lets the server say who took part or dropped
TRAIN_LOSS = "train_loss"
N_CASES = "n_cases"  # also a key of fedpath.evaluate's metrics
N_ITEM_CASES = "n_item_cases"  # idem

# Server -> partner (evaluate config of a deployment's publish round,
# server/deployed/publish.py): the promoted model travels as the round's parameters, these say
# what it is.
PUBLISH_VERSION = "publish-version"  # registry version number; absent = an ordinary evaluation
PUBLISH_CARD = "publish-card"  # JSON: the version's card (campaign, round, lineage, metrics)
PUBLISH_DECISION = "publish-decision"  # JSON: the champion / challenger decision that promoted it
# JSON: the version's Calibration (temperatures, certified cutoffs), when it carries one
PUBLISH_CALIBRATION = "publish-calibration"
