"""The preference-labeling web page: the session's file contract, the HTTP API, the CLI and a
real headless browser (Debian's chromium driven by selenium)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from rlseek.errors import DataError
from rlseek.reward_models.data import PreferenceDataset
from rlseek.reward_models.label_web import LabelServer, LabelSession

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1100,640")

CANDIDATES = [
    ("Review of the desk lamp: The light is", " bright and steady.", " dim and flickering."),
    ("Review of the blender: The motor is", " loud and weak.", " strong and quiet."),
    ("Review of Noodle House: The broth was", " rich.", " watery."),
    ("Review of the tent: The poles are", " sturdy.", " flimsy."),
]


def _data_file(tmp_path: Path) -> Path:
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"prompt": p, "a": a, "b": b}) + "\n" for p, a, b in CANDIDATES))
    return path


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- the session: file contract -------------------------------------------------------------
def test_each_label_is_written_at_once_and_resumes(tmp_path):
    out = tmp_path / "labels.jsonl"
    s = LabelSession(list(CANDIDATES), out, seed=3)
    first = s.state()["pair"]
    assert first["id"] == 0 and {first["left"], first["right"]} == {CANDIDATES[0][1], CANDIDATES[0][2]}
    s.choose(0, 2)
    assert _lines(out) == [{"prompt": CANDIDATES[0][0], "chosen": first["right"],
                            "rejected": first["left"], "pair": 0}]
    s.skip(1)
    st = s.choose(2, 1)
    assert (st["labelled"], st["skipped"], st["pair"]["id"]) == (2, 1, 3)
    # A new session on the same file continues with the first unlabelled pair; skips come back.
    s2 = LabelSession(list(CANDIDATES), out, seed=3)
    st2 = s2.state()
    assert (st2["labelled"], st2["skipped"], st2["pair"]["id"]) == (2, 0, 1)
    data = PreferenceDataset.from_jsonl(out)  # the file is valid training data in TRL's format
    assert [p.prompt for p in data] == [CANDIDATES[0][0], CANDIDATES[2][0]]


def test_undo_pops_labels_and_skips_newest_first_also_after_resume(tmp_path):
    out = tmp_path / "labels.jsonl"
    s = LabelSession(list(CANDIDATES), out)
    s.choose(0, 1)
    s.choose(1, 1)
    s.skip(2)
    assert s.undo()["pair"]["id"] == 2 and len(_lines(out)) == 2  # undoing a skip writes nothing
    assert s.undo()["pair"]["id"] == 1 and [r["pair"] for r in _lines(out)] == [0]
    s2 = LabelSession(list(CANDIDATES), out)  # after a restart the file's labels can be undone
    assert s2.state()["can_undo"]
    st = s2.undo()
    assert st["pair"]["id"] == 0 and not st["can_undo"] and out.read_text() == ""
    assert s2.undo()["labelled"] == 0  # nothing left: a no-op


def test_stale_or_bad_decisions_are_refused_without_writing(tmp_path):
    out = tmp_path / "labels.jsonl"
    s = LabelSession(list(CANDIDATES), out)
    with pytest.raises(ValueError, match="not the current pair"):
        s.choose(1, 1)
    with pytest.raises(ValueError, match="side must be 1 or 2"):
        s.choose(0, 3)
    assert not out.exists()


def test_resume_refuses_a_file_that_does_not_match_the_data(tmp_path):
    out = tmp_path / "labels.jsonl"
    LabelSession(list(CANDIDATES), out).choose(0, 1)
    changed = [CANDIDATES[0][:2] + (" changed.",)] + list(CANDIDATES[1:])
    with pytest.raises(DataError, match=r"line 1: its texts differ from pair 0"):
        LabelSession(changed, out)
    with pytest.raises(DataError, match="pair 0 is outside the 0 pairs"):
        LabelSession([], out)
    other = tmp_path / "other.jsonl"
    other.write_text('{"prompt": "p", "chosen": " a", "rejected": " b"}\n')
    with pytest.raises(DataError, match="no integer 'pair' field"):
        LabelSession(list(CANDIDATES), other)


def test_candidates_without_prompt_get_the_shared_prefix(tmp_path):
    out = tmp_path / "labels.jsonl"
    s = LabelSession([(None, "The soup was hot.", "The soup was cold.")], out)
    pair = s.state()["pair"]
    assert pair["prompt"] == "The soup was" and {pair["left"], pair["right"]} == {" hot.", " cold."}


# -- the HTTP API ---------------------------------------------------------------------------
def test_api_serves_the_page_and_rejects_bad_requests(tmp_path):
    out = tmp_path / "labels.jsonl"
    with LabelServer(LabelSession(list(CANDIDATES), out), port=0) as server:
        assert server.url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=server.url, timeout=60) as c:
            assert "Which completion is better?" in c.get("/").text
            assert c.get("/api/state").json()["pair"]["id"] == 0
            assert c.post("/api/choose", json={"pair": 2, "side": 1}).status_code == 409
            assert c.post("/api/choose", json={"pair": 0, "side": "left"}).status_code == 422
            assert c.post("/api/choose", json={"pair": 0, "side": 1}).json()["labelled"] == 1
    assert [r["pair"] for r in _lines(out)] == [0]


# -- the CLI --------------------------------------------------------------------------------
def _cli(*args: str, **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "rlseek.cli", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def test_cli_serve_prints_the_url_saves_labels_and_stops_on_sigterm(tmp_path):
    data, out = _data_file(tmp_path), tmp_path / "labels.jsonl"
    proc = _cli("prefs", "label", "--serve", "--data", str(data), "--out", str(out), "--port", "0")
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
        assert lines[0].startswith(f"labeling 4 pairs into {out}")
        url = lines[1].split()[1]
        assert url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=url, timeout=60) as c:
            assert c.post("/api/choose", json={"pair": 0, "side": 1}).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "stopped: 1 labels" in rest
    assert [r["pair"] for r in _lines(out)] == [0]


def test_cli_label_bad_input_is_one_line_exit_2(tmp_path):
    out = tmp_path / "labels.jsonl"
    for args, needle in [
        (("--serve", "--data", str(tmp_path / "missing.jsonl")), "does not exist"),
        (("--serve",), "needs the candidate pairs"),
        (("--serve", "--data", str(_data_file(tmp_path)), "--port", "70000"), "--port must be in 0..65535"),
    ]:
        proc = _cli("prefs", "label", *args, "--out", str(out))
        stdout, err = proc.communicate(timeout=180)
        assert proc.returncode == 2, (args, err)
        assert needle in err and len(err.strip().splitlines()) == 1, err
        assert not out.exists()


# -- a real browser -------------------------------------------------------------------------
@pytest.fixture
def browser(tmp_path, monkeypatch):
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip(f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}); "
                    "apt-get install -y chromium chromium-driver (CI's .ci/run does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.selenium_manager import SeleniumManager

    def no_download(*_a, **_k):
        raise AssertionError("selenium-manager must not run (it would download a driver)")

    monkeypatch.setattr(SeleniumManager, "binary_paths", no_download)
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)


def test_browser_labels_three_pairs_reloads_and_undoes(tmp_path, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    out = tmp_path / "labels.jsonl"
    wait = WebDriverWait(browser, 60)

    def shown() -> tuple[int, str, str]:
        wait.until(lambda d: d.find_element(By.ID, "left-text").text.strip())
        return (int(browser.find_element(By.ID, "pair").get_attribute("data-id")),
                browser.find_element(By.ID, "left-text").text, browser.find_element(By.ID, "right-text").text)

    def after(old_id: int) -> None:
        wait.until(lambda d: d.find_element(By.ID, "pair").get_attribute("data-id") != str(old_id)
                   or not d.find_element(By.ID, "pair").is_displayed())

    def counts() -> str:
        return browser.find_element(By.ID, "counts").text

    with LabelServer(LabelSession(list(CANDIDATES), out, seed=1), port=0) as server:
        browser.get(server.url)
        expected = []
        # Pair 0 by clicking the right side, pair 1 by key 1, pair 2 by key 2.
        k, left, right = shown()
        browser.find_element(By.ID, "right").click()
        expected.append((k, right, left))
        after(k)
        for key in ("1", "2"):
            k, left, right = shown()
            browser.find_element(By.TAG_NAME, "body").send_keys(key)
            expected.append((k, left, right) if key == "1" else (k, right, left))
            after(k)
        wait.until(lambda d: counts().startswith("3 labelled"))
        assert [(r["pair"], r["chosen"], r["rejected"]) for r in _lines(out)] == expected
        # Skip the fourth, so the page says it is done.
        k, _, _ = shown()
        browser.find_element(By.TAG_NAME, "body").send_keys("s")
        wait.until(lambda d: d.find_element(By.ID, "done").is_displayed())
        assert counts().startswith("3 labelled · 1 skipped")
        # A reload shows the same server-side state.
        browser.refresh()
        wait.until(lambda d: counts().startswith("3 labelled · 1 skipped"))
        # u twice: back to the skipped pair, then the third label leaves the file.
        browser.find_element(By.TAG_NAME, "body").send_keys("u")
        wait.until(lambda d: d.find_element(By.ID, "pair").is_displayed())
        assert shown()[0] == 3
        browser.find_element(By.ID, "undo").click()
        wait.until(lambda d: counts().startswith("2 labelled · 0 skipped"))
        assert shown()[0] == 2
        assert [(r["pair"], r["chosen"], r["rejected"]) for r in _lines(out)] == expected[:2]
        assert PreferenceDataset.from_jsonl(out).pairs[1].chosen == expected[1][1]
        shot = os.environ.get("RLSEEK_LABEL_SCREENSHOT")
        if shot:  # how docs/label-web.png is made
            browser.save_screenshot(shot)
    # The browser is gone with the server; the labels stay.
    assert len(LabelSession(list(CANDIDATES), out).state()["pair"]["prompt"]) > 0
