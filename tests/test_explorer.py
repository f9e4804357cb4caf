"""The account explorer: one HTML file driven in a real headless Chromium (Selenium with the
system chromium and chromedriver, which `make test` installs where missing)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from conftest import HOSTILE, browser_missing, cli


def _payload(page: Path) -> dict:
    html = page.read_text(encoding="utf-8")
    match = re.search(r'<script id="data" type="application/json">(.*?)</script>', html, re.S)
    return json.loads(match.group(1))


@pytest.fixture(scope="module")
def explorer_page(trained, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("explorer")
    page = folder / "accounts.html"
    result = cli(
        "explorer", "--data", str(trained.world), "--run", str(trained.run_dir),
        "--out", str(page), "--history", str(folder / "none.duckdb"), cwd=folder,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return page


def test_the_page_embeds_every_prospect_and_no_raw_markup_from_names(explorer_page, trained):
    html = explorer_page.read_text(encoding="utf-8")
    for name in HOSTILE.values():
        assert name not in html or not any(c in name for c in "<>&")
    assert "<img src=x" not in html and "<script>alert" not in html
    data = _payload(explorer_page)
    ids = data["columns"]["id"]
    assert len(ids) == len(set(ids)) > 100
    assert data["model_version"] == trained.result.scoring_model.version
    # every account has both heads' reasons, a trend point and (if it was a prospect) changes
    first = data["details"][0]
    assert first[0] and first[1] and len(first[2]) >= 1


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        browser_missing("chromium and chromedriver are not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1400,1000",
                     f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):  # fmt: skip
        options.add_argument(argument)
    session = webdriver.Chrome(service=Service(driver), options=options)
    yield session
    session.quit()


def _open(browser, page: Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(page.as_uri())
    WebDriverWait(browser, 60).until(
        lambda d: d.execute_script("return document.body.dataset.ready") == "1"
    )


def _rows(browser) -> list[list[str]]:
    from selenium.webdriver.common.by import By

    return [
        [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        for row in browser.find_elements(By.CSS_SELECTOR, "#rows tr")
    ]


def _count(browser) -> int:
    from selenium.webdriver.common.by import By

    return int(browser.find_element(By.ID, "count").text.split(" of ")[0].replace(",", ""))


def _matching(data: dict, text: str) -> int:
    """How many accounts the page should show for a search (name or id contains it)."""
    columns = data["columns"]
    return sum(
        text.lower() in f"{name} {account}".lower()
        for name, account in zip(columns["name"], columns["id"], strict=True)
    )


def _type(browser, text: str, expected: int) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    box = browser.find_element(By.ID, "search")
    # as a user does (clear() sends no input event): select all, delete, type
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.BACKSPACE)
    if text:
        box.send_keys(text)

    def shown(d) -> bool:  # the debounced search has run for this text
        rows = _rows(d)
        return _count(d) == expected and all(text.lower() in f"{r[1]} {r[2]}".lower() for r in rows)

    WebDriverWait(browser, 10, ignored_exceptions=(StaleElementReferenceException,)).until(shown)


@pytest.mark.slow(seconds=40)
def test_search_filter_and_card_work_in_a_real_browser(explorer_page, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    data = _payload(explorer_page)
    total = len(data["columns"]["id"])
    _open(browser, explorer_page)
    assert _count(browser) == total and len(_rows(browser)) == min(total, 100)

    # typing filters the rows to names or ids that contain the text
    name = next(n for n in data["columns"]["name"] if n.isascii() and n[:1].isalpha())
    query = name.split()[0][:5]
    _type(browser, query, _matching(data, query))
    rows = _rows(browser)
    assert 0 < _count(browser) < total
    assert all(query.lower() in (r[1] + " " + r[2]).lower() for r in rows)
    _type(browser, "", total)

    # a filter narrows them
    Select(browser.find_element(By.ID, "f-priority")).select_by_value("priority 1")
    rows = _rows(browser)
    assert 0 < _count(browser) < total and {r[3] for r in rows} == {"priority 1"}

    # a click opens the card of that account, with its reasons
    row = browser.find_elements(By.CSS_SELECTOR, "#rows tr")[0]
    index = int(row.get_attribute("data-index"))
    row.click()
    card = browser.find_element(By.ID, "card")
    assert card.find_element(By.TAG_NAME, "h2").text == data["columns"]["name"][index]
    shown = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#card-reasons li")]
    fit, conversion = data["details"][index][0], data["details"][index][1]
    expected = [data["strings"][text] for text, _ in conversion + fit]
    assert [re.sub(r"^[+\u2212] | \(\d+% of the score\)$", "", s) for s in shown] == expected
    assert browser.find_elements(By.CSS_SELECTOR, "#card-buying-group tr")


@pytest.mark.slow(seconds=20)
def test_hostile_account_names_execute_nothing(explorer_page, browser):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    data = _payload(explorer_page)
    hostile = [a for a in ("A0000001", "A0000006") if a in data["columns"]["id"]]
    assert hostile, "the hostile accounts are prospects in the test world"
    _open(browser, explorer_page)
    title = browser.title
    for account in hostile:
        _type(browser, account, _matching(data, account))
        rows = _rows(browser)
        assert [r[1] for r in rows if r[2] == account] == [HOSTILE[account]]  # shown as text
        browser.find_elements(By.CSS_SELECTOR, "#rows tr")[0].click()
        assert browser.find_element(By.CSS_SELECTOR, "#card h2").text == HOSTILE[account]
    assert browser.execute_script("return window.__pwned === undefined")
    assert browser.title == title
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018
