"""Explorer benchmark (part of ``make bench``): the account explorer for a 100,000-account world,
its file size, how long it takes to build, and how long headless Chromium takes to load it and to
answer a search; screenshots of the list and of a card -> ``benchmarks/explorer.md`` / ``.json``
and ``benchmarks/explorer.png`` / ``explorer_card.png``.

The model is trained on the default world (20,000 accounts, packaged configs) and scores a
100,000-account world made by the same generator (seed 8), so the page holds every prospect of
a large company's CRM; two earlier monthly scorings go to a score history first, so the cards
have a trend.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pandas as pd
from model import packaged_model_config, packaged_scorecard

from propensity.data.contract import load_tables
from propensity.data.world import WorldConfig, generate_world
from propensity.history import read_history
from propensity.io import write_text
from propensity.outputs.explorer import explorer_data, write_explorer
from propensity.runs.account import train_account_model
from propensity.runs.workflows import score_accounts

AS_OF = pd.Timestamp("2025-12-01")


def _browser(profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1500,1250", f"--user-data-dir={profile}"):  # fmt: skip
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def measure_in_browser(page: Path, out_dir: Path, workdir: Path) -> dict:
    """Load time (navigation start to the first rendered list, median of three loads), the time
    a search takes to show its rows, and the two screenshots."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser = _browser(workdir / "chromium")
    try:
        loads = []
        for _ in range(3):
            browser.get(page.as_uri())
            WebDriverWait(browser, 300).until(
                lambda d: d.execute_script("return document.body.dataset.ready") == "1"
            )
            loads.append(browser.execute_script("return window.explorerReadyMs"))
        searches = []
        for query in ("tech", "a00012", "gmbh"):
            # timed inside the page: from the keystroke's input event to the next frame after
            # the list was rebuilt (the 80 ms debounce included)
            searches.append(
                browser.execute_async_script(
                    "const [query, done] = arguments;"
                    "const rows = document.getElementById('rows');"
                    "const box = document.getElementById('search');"
                    "const start = performance.now();"
                    "const seen = new MutationObserver(() => { seen.disconnect();"
                    "  requestAnimationFrame(() => done(performance.now() - start)); });"
                    "seen.observe(rows, {childList: true});"
                    "box.value = query; box.dispatchEvent(new Event('input'));",
                    query,
                )
            )
        browser.execute_script(
            "const box = document.getElementById('search'); box.value = '';"
            "box.dispatchEvent(new Event('input'));"
        )
        time.sleep(0.5)
        browser.save_screenshot(str(out_dir / "explorer.png"))
        browser.find_elements(By.CSS_SELECTOR, "#rows tr")[0].click()
        time.sleep(0.3)
        browser.save_screenshot(str(out_dir / "explorer_card.png"))
    finally:
        browser.quit()
    return {
        "load_ms_median": round(sorted(loads)[1]),
        "load_ms": [round(x) for x in loads],
        "search_ms_incl_80ms_debounce": [round(x) for x in searches],
    }


def explorer_benchmark(workdir: Path, out_dir: Path, accounts: int = 100_000) -> dict:
    """See the module docstring; ``accounts`` sets the scored world's size."""
    default = generate_world(WorldConfig(), workdir / "world_default", overwrite=True)
    large = generate_world(
        WorldConfig(n_accounts=accounts, seed=8), workdir / f"explorer_{accounts}", overwrite=True
    )
    model = train_account_model(
        load_tables(default), packaged_model_config(), packaged_scorecard()
    ).scoring_model
    tables = load_tables(large)
    history = workdir / "explorer_history.duckdb"
    history.unlink(missing_ok=True)
    for previous in (AS_OF - pd.DateOffset(months=2), AS_OF - pd.DateOffset(months=1)):
        score_accounts(large, workdir / "explorer_scores.parquet", model, previous, tables=tables,
                       history=history)  # fmt: skip
    started = time.perf_counter()
    payload = explorer_data(tables, model, AS_OF, read_history(history))
    page = write_explorer(payload, workdir / "explorer.html")
    build_seconds = time.perf_counter() - started
    figures = {
        "accounts_in_world": accounts,
        "prospects_on_page": len(payload["columns"]["id"]),
        "as_of": str(AS_OF.date()),
        "model_version": model.version,
        "build_seconds": round(build_seconds, 1),
        "file_mb": round(page.stat().st_size / 1e6, 1),
        **measure_in_browser(page, out_dir, workdir),
    }
    lines = [
        "# Account explorer at 100,000 accounts",
        "",
        f"One self-contained HTML page (`propensity explorer`) for the {figures['prospects_on_page']:,} "
        f"prospects of a {accounts:,}-account generated world on {figures['as_of']}, scored by a model "
        "trained on the default world (packaged configs), with two earlier monthly scorings in the "
        "score history. Headless Chromium on this machine (2 cores), measured by "
        "`benchmarks/explorer.py` (`make bench`).",
        "",
        "| figure | value |",
        "|---|---|",
        f"| file size | {figures['file_mb']} MB |",
        f"| build (score with reasons, previous snapshot, buying groups, intent, page) | {figures['build_seconds']} s |",
        f"| load to first rendered list (median of 3) | {figures['load_ms_median']} ms |",
        f"| search to rows shown (incl. 80 ms debounce) | {', '.join(map(str, figures['search_ms_incl_80ms_debounce']))} ms |",
        "",
        "![the list](explorer.png)",
        "",
        "![a card](explorer_card.png)",
        "",
    ]
    write_text("\n".join(lines), out_dir / "explorer.md")
    write_text(json.dumps(figures, indent=2) + "\n", out_dir / "explorer.json")
    print(json.dumps(figures, indent=2))
    return figures
