"""The privacy report (privacy/dp/report.py): the run's ε from its rounds, the table and the JSON
it writes, as a reader of results.json and report.md sees them."""

from __future__ import annotations

import json

from fedpath.privacy.dp.config import PartnerDP, PrivacySettings, SessionDP
from fedpath.privacy.dp.report import PrivacyReport, PrivacyRound


def _report() -> PrivacyReport:
    settings = PrivacySettings(
        delta=1e-5, session=SessionDP(noise_multiplier=2.0), partner=PartnerDP(noise_multiplier=1.0)
    )
    return PrivacyReport(
        settings,
        sample_rate=0.5,
        rounds=[
            PrivacyRound(1, released=True, partner_epsilon=1.5, session_epsilon={0: 0.8, 1: 0.8}),
            PrivacyRound(
                2, released=True, partner_epsilon=2.1, session_epsilon={0: 1.2}, refused=[1]
            ),
            PrivacyRound(3, released=False, refused=[0, 1]),  # SecAgg+ halted: nothing released
        ],
    )


def test_the_runs_epsilon_is_the_largest_session_charge_and_the_last_released_partner_epsilon():
    # Prepare
    report = _report()
    # Execute
    summary = report.summary()
    # Assert
    assert summary == {
        "delta": 1e-5,
        "session_epsilon": 1.2,
        "partner_epsilon": 2.1,
        "refusals": 3,
    }


def test_a_level_that_is_off_reports_none_and_a_run_without_rounds_zero():
    # Prepare
    session_only = PrivacyReport(PrivacySettings(session=SessionDP()), sample_rate=1.0)
    # Execute / Assert
    assert session_only.partner_epsilon is None
    assert session_only.session_epsilon == 0.0


def test_rows_and_json_say_per_round_who_spent_what_and_who_refused():
    # Prepare
    report = _report()
    # Execute
    rows = report.rows()
    written = json.loads(json.dumps(report.to_dict()))
    # Assert
    assert [r["refused"] for r in rows] == ["-", "1", "0, 1"]
    assert [r["session_epsilon_max"] for r in rows] == [0.8, 1.2, None]
    assert [r["released"] for r in rows] == [True, True, False]
    assert written["rounds"][0]["session_epsilon"] == {"0": 0.8, "1": 0.8}
    assert written["settings"]["session"]["noise_multiplier"] == 2.0
    assert written["session_epsilon"] == 1.2 and written["sample_rate"] == 0.5
    assert report.headline() == (
        "session-level ε = 1.2 (the largest any partner charged; noise multiplier 2.0); "
        "partner-level ε = 2.1 (noise multiplier 1.0, client-side fixed clipping); "
        "δ = 1e-05; refusals: 3."
    )
