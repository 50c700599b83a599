"""The admin's timeline and revert flow in a real headless Chromium, against a real server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.test.testcases import LiveServerThread

import koherent
from koherent.models import Assignation
from tests import services
from tests.undo.scenario import Scenario, snapshot

pytestmark = [pytest.mark.processes, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--window-size=1400,1000",
)


@pytest.fixture
def live_server_url() -> Iterator[str]:
    """The test project served on 127.0.0.1, on a port the system picks."""
    thread = LiveServerThread("127.0.0.1", StaticFilesHandler, port=0)
    thread.daemon = True
    thread.start()
    thread.is_ready.wait(timeout=30)
    if thread.error:
        raise thread.error
    try:
        yield f"http://127.0.0.1:{thread.port}"
    finally:
        thread.terminate()
        thread.join(timeout=30)


@pytest.fixture
def browser() -> Iterator[Any]:
    chromium, chromedriver = services.need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    driver.implicitly_wait(10)
    try:
        yield driver
    finally:
        driver.quit()


def test_timeline_and_revert_in_a_browser(
    browser: Any,
    live_server_url: str,
    scenario: Scenario,
    django_user_model: Any,
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By

    django_user_model.objects.create_superuser(username="root", password="secret-pw")

    browser.get(f"{live_server_url}/admin/login/?next=/admin/koherent/assignation/")
    browser.find_element(By.NAME, "username").send_keys("root")
    browser.find_element(By.NAME, "password").send_keys("secret-pw")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()

    # The list: open the assignation.
    browser.find_element(By.LINK_TEXT, scenario.assignation_id).click()

    # The timeline: one row per change, with its field diffs.
    rows = browser.find_elements(By.CSS_SELECTOR, "#koherent-timeline tr.koherent-entry")
    assert len(rows) == koherent.history_for_assignation(scenario.assignation_id).count()
    first = rows[0].text
    assert "undoapp.Invoice" in first
    assert "total: 10 → 11" in first
    browser.save_screenshot(str(tmp_path / "timeline.png"))

    # The preview: the plan, nothing written yet; then the confirmation.
    browser.find_element(By.CSS_SELECTOR, "a.koherent-revert-link").click()
    summary = browser.find_element(By.ID, "koherent-plan-summary").text
    assert "3 to delete, 2 to restore, 3 to re-create" in summary
    assert snapshot() == scenario.after
    browser.save_screenshot(str(tmp_path / "preview.png"))
    browser.find_element(By.ID, "koherent-confirm").click()

    # Back on the revert's own page, with the outcome.
    message = browser.find_element(By.CSS_SELECTOR, "ul.messagelist li.success").text
    assert "Reverted: 3 deleted, 2 restored, 3 re-created" in message
    revert = Assignation.objects.get(origin="revert", parent_id=scenario.assignation_id)
    assert revert.pk in browser.title
    assert snapshot() == scenario.before
    browser.save_screenshot(str(tmp_path / "reverted.png"))
