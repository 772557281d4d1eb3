"""The web console in a real browser (headless Chromium driven by Selenium) against a real
server, Docker engine and Caddy: first-run setup, a project, an app from an image, a deploy
whose logs stream live, the app at its URL, a secret variable masked after save, a redeploy, a
rollback, the history of all of it, the environment's variables on the app page, stop and
start, and a delete that asks for the app's name. Screenshots of the main pages go to
`test-artifacts/console/`."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from launchbay.settings import Settings

from docker_support import eventually, remove_runtime, via_url, with_edge
from support import login

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
EMAIL, PASSWORD = "ops@example.com", "console-password-1"


@pytest.fixture
def settings(tmp_path, database_url) -> Settings:
    return with_edge(tmp_path, database_url, work_lease_seconds=5,
                     health_observe_seconds=1)


@pytest.fixture
def browser(server, cp) -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1280,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # CSP violations land there
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.implicitly_wait(0)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()
    cp.workers.stop()
    with httpx.Client(base_url=server) as http:  # what the test deployed goes
        api = login(http, EMAIL, PASSWORD)
        remove_runtime(api.get("/servers")["items"][0]["id"])


def until(check, within: float = 60):  # type: ignore[no-untyped-def]
    """`check()`'s first truthy result (an element htmx just replaced is looked up again)."""
    deadline = time.monotonic() + within
    while True:
        try:
            if result := check():
                return result
        except WebDriverException:  # e.g. an element htmx replaced meanwhile
            pass
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.1)


def fill(driver: Any, form: str, **values: str) -> None:
    """Types into the fields of the form posting to `form`, then submits it."""
    element = driver.find_element(By.CSS_SELECTOR, f'form[action="{form}"]')
    for name, value in values.items():
        field = element.find_element(By.NAME, name)
        field.clear()
        field.send_keys(value)
    element.find_element(By.TAG_NAME, "button").click()


def press(driver: Any, form: str) -> None:
    """Clicks the button of the form posting to `form`, and accepts its confirmation."""
    driver.find_element(By.CSS_SELECTOR, f'form[action="{form}"] button').click()
    try:
        driver.switch_to.alert.accept()
    except NoAlertPresentException:
        pass


def shot(driver: Any, name: str) -> None:
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def followed_to_success(driver: Any) -> str:
    """Watches the deployment page until its live log says it ended, then returns the log."""
    logs = driver.find_element(By.ID, "logs")
    seen_live = until(lambda: logs.text.strip() and not logs.get_attribute("data-done")
                      and logs.text, within=30) if not logs.get_attribute("data-done") else ""
    until(lambda: logs.get_attribute("data-done") == "true")
    until(lambda: "succeeded" in driver.find_element(By.ID, "status").text, within=15)
    assert "the deployment ended" in logs.text
    assert seen_live is not None
    return str(logs.text)


def test_setup_deploy_watch_open_configure_redeploy_roll_back(browser, server, settings):
    driver = browser
    driver.get(server)
    assert driver.current_url.endswith("/setup")
    shot(driver, "01-setup")
    fill(driver, "/setup", email=EMAIL, password=PASSWORD, confirm=PASSWORD)
    until(lambda: driver.current_url.endswith("/projects"))
    assert EMAIL in driver.find_element(By.TAG_NAME, "header").text
    press(driver, "/logout")
    until(lambda: driver.current_url.endswith("/login"))
    shot(driver, "01-login")
    fill(driver, "/login", email=EMAIL, password=PASSWORD)
    until(lambda: driver.current_url.endswith("/projects"))

    fill(driver, "/projects", name="Web Shop")
    until(lambda: "/projects/prj_" in driver.current_url)
    project = driver.current_url.removeprefix(server)
    fill(driver, f"{project}/environments", name="production")
    until(lambda: driver.find_elements(By.ID, "f-environmentId"))
    fill(driver, f"{project}/apps", name="web", image="lbtest/hello:v1", port="8080")
    until(lambda: "/resources/res_" in driver.current_url)
    resource = driver.current_url.removeprefix(server)
    shot(driver, "02-new-app")

    driver.find_element(By.ID, "deploy").click()
    until(lambda: "/deployments/dep_" in driver.current_url)
    log = followed_to_success(driver)
    assert "deployment requested" in log
    shot(driver, "03-deployment-live-logs")

    driver.get(server + resource)
    url = driver.find_element(By.ID, "app-url").get_attribute("href")
    assert f":{settings.edge_http_port}" in url
    driver.get(server + project)
    assert url in driver.find_element(By.ID, "main").text  # the project lists it too
    driver.get(url)  # `*.localhost` is loopback to Chromium: Caddy answers
    assert until(lambda: "hello v1" in driver.page_source or driver.refresh(), within=30)

    driver.get(f"{server}{resource}/logs")  # the release's output, followed live
    until(lambda: "response:200" in driver.find_element(By.ID, "logs").text)  # httpd -v
    # httpd writes its access log to stderr: shown as such, not painted as errors.
    assert driver.find_elements(By.CSS_SELECTOR, "#logs .stream-stderr")
    assert not driver.find_elements(By.CSS_SELECTOR, "#logs .level-error")
    assert "Web Shop" in driver.find_element(By.CSS_SELECTOR, ".crumbs").text

    driver.get(server + resource)
    driver.find_element(By.CSS_SELECTOR, "label[for=f-secret]").click()  # by its label
    fill(driver, f"{resource}/variables", key="API_KEY", value="hunter2-secret")
    until(lambda: "API_KEY" in driver.find_element(By.ID, "variables").text)
    assert "hunter2-secret" not in driver.page_source  # masked after save
    health = until(lambda: "running" in (text := driver.find_element(
        By.CSS_SELECTOR, "section[aria-labelledby=health-h]").text) and text or driver.refresh())
    assert "healthy" in health, health  # observed every second, shown after a reload
    shot(driver, "04-resource")

    press(driver, f"{resource}/redeploy")
    until(lambda: "/deployments/dep_" in driver.current_url)
    followed_to_success(driver)

    driver.get(server + resource)
    press(driver, f"{resource}/rollback")
    until(lambda: "/deployments/dep_" in driver.current_url)
    followed_to_success(driver)
    assert "rollback" in driver.find_element(By.ID, "deployment-status").text

    driver.get(server + resource)
    rows = driver.find_elements(By.CSS_SELECTOR, "section[aria-labelledby=history] tbody tr")
    history = [row.text for row in rows]
    assert len(history) == 3, history
    assert [h.split()[2] for h in history] == ["rollback", "redeploy", "create"], history
    assert all(EMAIL in h for h in history)
    assert "succeeded" in history[0] and "rolled-back" in history[1], history
    shot(driver, "05-history")

    # The variables the app gets, its environment's included; stop and start it.
    with httpx.Client(base_url=server) as http:
        api = login(http, EMAIL, PASSWORD)
        env = api.get(f"/resources/{resource.rsplit('/', 1)[1]}")["resource"]["environmentId"]
        api.post(f"/environments/{env}/variables", {"key": "REGION", "value": "eu-west"})
    driver.get(server + resource)
    variables = driver.find_element(By.ID, "variables").text
    assert "REGION" in variables and "eu-west" in variables and "environment" in variables
    press(driver, f"{resource}/runtime/stop")
    until(lambda: "stopped" in driver.find_element(By.ID, "runtime-state").text)
    assert "stopped" in driver.find_element(By.TAG_NAME, "h1").text
    stopped = via_url(url, settings.edge_http_port)
    assert stopped.status_code == 503 and "not running" in stopped.text
    shot(driver, "08-stopped")
    press(driver, f"{resource}/runtime/start")
    until(lambda: "running" in driver.find_element(By.ID, "runtime-state").text)
    assert eventually(lambda: via_url(url, settings.edge_http_port).text == "hello v1\n")

    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {  # a phone's screen
        "width": 375, "height": 800, "deviceScaleFactor": 1, "mobile": False})
    driver.get(server + resource)
    wide = driver.execute_script(
        "return [...document.querySelectorAll('body *')].filter(e => !e.closest('.scroll') && "
        "e.getBoundingClientRect().right > 376).map(e => e.tagName + '.' + e.className + "
        "'#' + e.id + ' ' + Math.round(e.getBoundingClientRect().right)).slice(0, 8)")
    shot(driver, "06-resource-375px")
    assert driver.execute_script("return window.innerWidth") == 375
    assert driver.execute_script("return document.documentElement.scrollWidth") <= 375, wide
    shot(driver, "06-resource-375px")
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)  # the keyboard's first stop
    assert driver.switch_to.active_element.text == "Skip to content"
    for page in ("/servers", "/work", "/members", "/tokens", "/instances"):
        driver.get(server + page)
        assert driver.find_element(By.TAG_NAME, "h1").text
        shot(driver, f"07{page.replace('/', '-')}")
    driver.get(server + "/servers")
    assert f"{os.cpu_count()} cores" in driver.find_element(By.ID, "main").text

    driver.get(server + resource)  # deleting asks for the app's name
    fill(driver, f"{resource}/delete", confirmName="wbe")
    assert "type web to delete it" in until(lambda: driver.find_element(By.ID, "e-confirmName"))\
        .text
    fill(driver, f"{resource}/delete", confirmName="web")
    until(lambda: driver.current_url.endswith(project))
    assert "No app in this environment." in driver.find_element(By.ID, "main").text
    shot(driver, "09-app-deleted")
    assert eventually(lambda: via_url(url, settings.edge_http_port).status_code != 200)
    # All of it ran under the pages' Content-Security-Policy (no inline script or style).
    refused = [e["message"] for e in driver.get_log("browser")
               if "Content Security Policy" in e["message"]]
    assert refused == [], refused
