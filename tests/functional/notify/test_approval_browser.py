"""The approval page in a real browser: Debian's Chromium driven by Selenium through Debian's chromedriver
(``make browser`` installs both; nothing is downloaded at test time).

The approval function URL handler is served over HTTP on 127.0.0.1 (``approval_server``); links arrive in each
approver's inbox (SNS -> filtered SQS in moto). A GET of a link changes nothing; clicking Approve resumes the
workflow with the link's owner as the approver; expired, reused and forged links each show a clear page and change
nothing. Screenshots are saved under the test's tmp directory.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from approval_server import serve
from approval_support import KEY, Inboxes
from notify_support import DIAGNOSIS, PLAN, Workflow

from esm_medic.approval import get_approval, request_approval

CHROMIUM = os.environ.get("ESM_MEDIC_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("ESM_MEDIC_CHROMEDRIVER", "/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def _browser_missing() -> str:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (os.path.exists(p) or shutil.which(p))]
    return ", ".join(missing)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    missing = _browser_missing()
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but the browser is missing ({missing}): run `make browser`")
        pytest.skip(f"Debian chromium / chromium-driver not installed ({missing}); `make browser` installs them")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def site(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Inboxes]]:
    boxes = Inboxes(aws, ["alice@example.com", "bob@example.com"])
    with serve() as server:
        monkeypatch.setenv("ESM_MEDIC_APPROVAL_BASE_URL", server.url)
        monkeypatch.setenv("ESM_MEDIC_APPROVAL_KEY", KEY)
        monkeypatch.setenv("ESM_MEDIC_APPROVAL_LINK_TOPIC_ARN", boxes.topic_arn)
        monkeypatch.setenv("ESM_MEDIC_APPROVERS", "alice@example.com,bob@example.com")
        yield server, boxes


def ask(aws: Any, workflow: Workflow, timeout: int = 600) -> tuple[Any, str]:
    waiting = workflow.start()
    req = request_approval(
        aws,
        task_token=waiting.task_token,
        uuid="esm-uuid-browser",
        incident_id="inc-browser",
        plan=PLAN,
        diagnosis=DIAGNOSIS,
        timeout_seconds=timeout,
    )
    return waiting, str(req["approval_id"])


def heading(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.TAG_NAME, "h1").text)


def unchanged(aws: Any, workflow: Workflow, waiting: Any, aid: str) -> None:
    view = get_approval(aws, aid)
    assert view is not None and view["status"] in ("pending", "expired") and view["approvers"] == []
    assert workflow.status(waiting.execution_arn) == "RUNNING"


def test_open_the_link_then_click_approve(
    aws: Any, workflow: Workflow, site: Any, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    server, boxes = site
    waiting, aid = ask(aws, workflow)
    link = boxes.links("alice@example.com")["approve"]
    assert link.startswith(server.url)

    browser.get(link)
    assert heading(browser) == "esm-medic: approve a fix?"
    page = browser.find_element(By.TAG_NAME, "body").text
    assert "Deciding as alice@example.com" in page and "Nothing has happened yet" in page
    assert not browser.find_elements(By.NAME, "approver")  # nothing to type: the link says who you are
    browser.save_screenshot(str(tmp_path / "1-confirmation.png"))
    unchanged(aws, workflow, waiting, aid)  # the GET changed nothing
    assert "POST" not in server.methods()

    browser.find_element(By.CSS_SELECTOR, "button.approve").click()
    WebDriverWait(browser, 30).until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Approved"))
    assert "approved by alice@example.com" in browser.find_element(By.TAG_NAME, "body").text
    browser.save_screenshot(str(tmp_path / "2-approved.png"))
    done = workflow.finish(waiting.execution_arn)
    assert done["status"] == "SUCCEEDED"  # SendTaskSuccess resumed the execution in moto
    assert json.loads(done["output"])["approver"] == "alice@example.com"
    assert get_approval(aws, aid)["decided_by"] == "alice@example.com"  # type: ignore[index]
    assert (tmp_path / "2-approved.png").stat().st_size > 1000


def test_reused_link_shows_a_clear_page_and_changes_nothing(
    aws: Any, workflow: Workflow, site: Any, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    _, boxes = site
    waiting, aid = ask(aws, workflow)
    alice, bob = boxes.links("alice@example.com"), boxes.links("bob@example.com")
    browser.get(bob["reject"])  # bob opens his page and leaves it open
    bob_tab = browser.current_window_handle
    browser.switch_to.new_window("tab")
    browser.get(alice["approve"])
    browser.find_element(By.CSS_SELECTOR, "button.approve").click()
    WebDriverWait(browser, 30).until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Approved"))
    assert workflow.finish(waiting.execution_arn)["status"] == "SUCCEEDED"

    browser.get(alice["approve"])  # the used link again
    assert heading(browser) == "Already approved"
    assert "already approved by alice@example.com" in browser.find_element(By.TAG_NAME, "body").text
    browser.switch_to.window(bob_tab)
    browser.find_element(By.CSS_SELECTOR, "button.reject").click()  # a stale page
    WebDriverWait(browser, 30).until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Not done"))
    assert "already approved" in browser.find_element(By.TAG_NAME, "body").text
    browser.save_screenshot(str(tmp_path / "reused.png"))
    view = get_approval(aws, aid)
    assert view is not None and view["status"] == "approved" and view["approvers"] == ["alice@example.com"]


def test_expired_link_shows_a_clear_page_and_changes_nothing(
    aws: Any, workflow: Workflow, site: Any, browser: Any, tmp_path: Path
) -> None:
    _, boxes = site
    waiting, aid = ask(aws, workflow, timeout=1)
    link = boxes.links("alice@example.com")["approve"]
    time.sleep(1.2)
    browser.get(link)
    assert heading(browser) == "Expired"
    assert "nothing was changed" in browser.page_source
    browser.save_screenshot(str(tmp_path / "expired.png"))
    unchanged(aws, workflow, waiting, aid)


def test_forged_link_shows_a_clear_page_and_changes_nothing(
    aws: Any, workflow: Workflow, site: Any, browser: Any, tmp_path: Path
) -> None:
    _, boxes = site
    waiting, aid = ask(aws, workflow)
    link = boxes.links("bob@example.com")["approve"]
    for forged in (link[:-6] + "abcdef", link.replace("sig=", "sig=x"), link + "%C3%A9"):
        browser.get(forged)
        assert heading(browser) == "Not found"
        assert "This approval link is not valid." in browser.page_source
    browser.save_screenshot(str(tmp_path / "forged.png"))
    unchanged(aws, workflow, waiting, aid)
