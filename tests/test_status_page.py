"""The coordinator's status page, opened in a real headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by Selenium) against a real coordinator HTTP server reading a real
state folder: what an operator sees must be what the state files say."""

from __future__ import annotations

import os
import urllib.request
from dataclasses import asdict
from pathlib import Path

import pytest
from test_deployment_parts import make_kit  # tests/ is on sys.path

from fedpath.server.deployed.coordinator import Coordinator
from fedpath.server.deployed.settings import coordinator_settings
from fedpath.server.deployed.status import (
    CAMPAIGN,
    SERVICE,
    read_status,
    status_alerts,
    write_status,
)
from fedpath.strategies.recorder import RoundRecord
from fedpath.yamlconf import load_service_config

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
TEXTS = ("superlink", "campaign-name", "round-text", "partner-counts", "registry", "verdict")
SCREENSHOT_ENV = "FEDPATH_STATUS_SCREENSHOT"  # set to a path to refresh docs/img/status-page.png


def browser():
    """Headless Chromium, no network of its own, a fresh profile; fails under CI when absent."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        missing = f"{CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"{missing} must be installed; .ci/run installs them", pytrace=False)
        pytest.skip(f"needs {missing}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1100",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


def record(round_: int, recall: float, dropped: list[int]) -> dict:
    row = RoundRecord(
        round=round_,
        sampled=3,
        participants=[i for i in range(3) if i not in dropped],
        dropped=len(dropped),
        dropped_partners=dropped,
        loss=1 - recall,
        metrics={"recall@20": recall, "mrr@20": recall / 3, "action_accuracy": 0.6 + recall / 5},
        round_seconds=4.2,
    )
    return {**asdict(row), "version": round_}


@pytest.fixture
def coordinator(tmp_path: Path):
    """A coordinator of a provisioned three-partner kit serving a state folder in mid-campaign
    (no SuperLink: the page reads the state files, which the campaign writes)."""
    kit = make_kit(tmp_path, {"model": "markov", "item_buckets": 16})
    raw = load_service_config("coordinator")
    raw["http"]["port"] = 0
    raw["training"]["strategy"] = "sum"
    coordinator = Coordinator(coordinator_settings(kit / "coordinator", raw, "c0002"))
    coordinator.prepare()
    coordinator.write_service()  # the real service document: partners, address, SuperLink down
    service = coordinator.state / SERVICE
    document = read_status(service)
    document["partners"]["alpha"]["node_id"], document["partners"]["beta"]["node_id"] = 11, 12
    document["partners"]["gamma"]["node_id"] = 13
    write_status(service, {**document, "refusals": {"unregistered node key": 2}})
    write_status(
        coordinator.state / CAMPAIGN,
        {
            "campaign": "c0002",
            "state": "training",
            "rounds": 5,
            "completed_rounds": 3,
            "connected_nodes": [11, 12, 99],
            "unknown_nodes": [99],
            "records": [record(1, 0.21, []), record(2, 0.27, []), record(3, 0.30, [2])],
            "epsilon_by_partner": {"alpha": 1.25, "beta": 0.75},
            "drift": {
                "alpha": {"confidence_psi": 0.02, "action_psi": 0.01, "samples": 500},
                "beta": {"confidence_psi": 0.31, "action_psi": 0.12, "samples": 500, "alert": True},
                "gamma": {"confidence_psi": 0.15, "action_psi": 0.04, "samples": 240},
            },
            "promoted": {
                "version": 4,
                "reason": "promoted by this campaign",
                "decision": {
                    "metric": "recall@20",
                    "champion": 0.2612,
                    "candidate": 0.3011,
                    "promoted": True,
                    "champion_version": 2,
                    "candidate_version": 4,
                },
            },
        },
    )
    server = coordinator.start_http()
    yield coordinator
    server.shutdown()


def test_alerts_are_graded_most_urgent_first() -> None:
    # Prepare
    status = {
        "service": {"superlink_up": True, "refusals": {"bad key": 1}},
        "campaign": {
            "unknown_nodes": [7],
            "records": [{"round": 2, "dropped": 1}],
            "drift": {
                "a": {"confidence_psi": 0.05, "action_psi": 0.0, "samples": 100},
                "b": {"confidence_psi": 0.1, "action_psi": 0.0, "samples": 100},
                "c": {"confidence_psi": 0.0, "action_psi": 0.3, "samples": 100, "alert": True},
            },
        },
    }

    # Execute
    alerts = status_alerts(status)

    # Assert: PSI 0.1 is "moderate" (warning), the partner's own alert is critical
    assert [(a["grade"], a["subject"]) for a in alerts] == [
        ("critical", "unknown nodes"),
        ("critical", "drift c"),
        ("warning", "dropouts"),
        ("warning", "refusals"),
        ("warning", "drift b"),
        ("info", "drift a"),
    ]
    assert status_alerts({"service": {"superlink_up": False}})[0]["subject"] == "superlink"


def test_status_page_shows_the_campaign_in_a_real_browser(coordinator: Coordinator) -> None:
    # Prepare
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url = f"http://127.0.0.1:{coordinator.http_port}/"
    with urllib.request.urlopen(url + "status.js") as response:
        assert response.headers["Content-Type"].startswith("text/javascript")
    driver = browser()

    try:
        # Execute
        driver.get(url)
        WebDriverWait(driver, 20).until(
            lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true"
        )
        text = {id_: driver.find_element(By.ID, id_).text for id_ in TEXTS}
        partners = {
            row.get_attribute("data-partner"): row.text
            for row in driver.find_elements(By.CSS_SELECTOR, "#partners tr")
        }
        grades = [
            (li.get_attribute("data-grade"), li.text)
            for li in driver.find_elements(By.CSS_SELECTOR, "#alerts li")
        ]
        curves = {
            svg.get_attribute("data-metric"): svg.find_element(By.TAG_NAME, "polyline")
            .get_attribute("points")
            .split()
            for svg in driver.find_elements(By.CSS_SELECTOR, "svg.curve")
        }
        errors = [
            entry for entry in driver.get_log("browser") if entry["level"] in {"SEVERE", "ERROR"}
        ]
        if os.environ.get(SCREENSHOT_ENV):
            driver.save_screenshot(os.environ[SCREENSHOT_ENV])
    finally:
        driver.quit()

    # Assert
    assert not errors, errors
    assert "SuperLink down" in text["superlink"]
    assert text["campaign-name"] == "c0002" and text["round-text"] == "round 3 of 5 completed"
    assert text["partner-counts"] == ("2 online, 1 dropped, 0 not seen, 1 unknown node(s) refused")
    assert partners["alpha"].split() == ["alpha", "11", "online", "1.25"]
    assert partners["gamma"].split() == ["gamma", "13", "dropped", "–"]
    assert [g for g, _ in grades] == ["critical"] * 3 + ["warning"] * 3 + ["info"]
    assert any("drift beta" in t and "drift alert" in t for _, t in grades)
    assert "champion 2 0.2612" in text["registry"] and "challenger 4 0.3011" in text["registry"]
    assert text["verdict"] == "serving version 4: promoted by this campaign"
    assert set(curves) == {"recall@20", "mrr@20", "action_accuracy", "loss"}
    assert all(len(points) == 3 for points in curves.values())
    # recall rises round after round, so its line climbs (SVG y grows downwards)
    ys = [float(p.split(",")[1]) for p in curves["recall@20"]]
    assert ys[0] > ys[1] > ys[2]


def test_the_page_refers_to_nothing_outside_the_coordinator() -> None:
    # Prepare
    page = Path(__file__).resolve().parents[1] / "server" / "deployed" / "page"

    # Execute
    text = "".join(p.read_text() for p in page.iterdir())

    # Assert
    assert "default-src 'self'" in text
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in text and "//cdn" not in text
