"""tfae serve's page at ``/``: its files and policy, the model it describes, and (in a real
headless Chromium) the scores it shows for dropped images, which must be ``tfae score``'s."""

import json
import os
import pathlib
import re
import shutil
import urllib.error
import urllib.request

import numpy as np
import pytest
import tensorflow as tf

import tfae
from tfae.serving import Server, ServerSettings
from tfae.serving.page import FILES, MAX_IMAGES, POLICY

BROWSER, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = tmp_path_factory.mktemp("page")
    # Trained enough for its reconstructions to look like digits: the browser test's screenshot
    # is the serving tutorial's picture of the page.
    run = tfae.fit(tfae.FitConfig(model="deep", epochs=4, limit=1000, batch_size=32,
                                  model_options={"hidden": (128,), "latent_dim": 16}),
                   work / "run", export=True, export_dir=work / "export", verbose=0)
    return work, run


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def _base(server):
    return server.rest_url.split("/v1/")[0]


def test_the_page_is_tfaes_own_files_under_its_policy_and_describes_the_model(run):
    work, fitted = run
    with Server(ServerSettings(str(work / "export"), "digits", port=0, grpc_port=0)) as server:
        base = _base(server)
        for route in FILES:
            status, headers, body = _get(base + route)
            assert status == 200 and headers["content-security-policy"] == POLICY, route
            assert headers["x-content-type-options"] == "nosniff"
            # no file from elsewhere: every src and href is the page's own or inline data
            for link in re.findall(rb'(?:src|href)="([^"]*)"', body):
                assert link.startswith((b"/page/", b"data:")), (route, link)
            assert b"http://" not in body and b"https://" not in body, route
        status, headers, body = _get(base + "/")
        assert b'<script src="/page/page.js" defer></script>' in body
        assert b"<script>" not in body and b" style=" not in body  # nothing inline to allow
        status, _, body = _get(base + "/page/model.json")
        described = json.loads(body)
        detector = tfae.open_model(fitted.run_dir).detector()
        assert described["name"] == "digits" and described["versions"] == [1]
        assert described["model"] == "deep" and described["resize"] == "stretch"
        assert described["image_shape"] == [28, 28, 1] and described["latent_dim"] == 16
        assert {"score_bytes", "prepare_bytes", "encode_bytes"} <= set(described["signatures"])
        assert described["anomaly"] == {"score": "reconstruction", "contamination": 0.05,
                                        "threshold": pytest.approx(detector.threshold_)}
        assert described["max_images"] == MAX_IMAGES
        # the routes are fixed names: nothing else on the server's disk is reachable
        for path in ("/page/../1/tfae.json", "/page/%2e%2e/1/anomaly.json", "/page/other.js",
                     "/page.html", "/page/", "/1/anomaly.json"):
            assert _get(base + path)[0] == 404, path
        # the REST API answers as before beside it
        assert _get(server.rest_url)[0] == 200


def test_the_page_is_off_when_asked_and_by_default_off_loopback(run):
    work, _ = run
    with Server(ServerSettings(str(work / "export"), "digits", port=0, grpc_port=0,
                               page=False)) as server:
        assert _get(_base(server) + "/")[0] == 404
        assert _get(_base(server) + "/page/model.json")[0] == 404
        assert _get(server.rest_url)[0] == 200
    assert ServerSettings("e", "m").shows_page
    assert not ServerSettings("e", "m", host="0.0.0.0").shows_page
    assert ServerSettings("e", "m", host="0.0.0.0", page=True).shows_page


def test_prepare_bytes_gives_the_image_the_model_scores(run):
    work, fitted = run
    served = tf.saved_model.load(str(fitted.export_path))
    photo = tf.io.encode_jpeg(np.random.default_rng(3).integers(0, 256, (40, 33, 3),
                                                                dtype=np.uint8)).numpy()
    prepared = served.signatures["prepare_bytes"](image_bytes=tf.constant([photo]))["images"]
    assert prepared.shape == (1, 28, 28, 1)
    by_bytes = served.signatures["score_bytes"](image_bytes=tf.constant([photo]))["scores"]
    by_images = served.signatures["score"](images=prepared)["scores"]
    np.testing.assert_allclose(by_bytes, by_images, rtol=1e-6)


def _browser():
    if not (BROWSER and DRIVER):
        pytest.skip("no headless browser here: Debian's chromium and chromium-driver "
                    "(.ci/run installs them)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1100,800"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(DRIVER), options=options)


def _wait(driver, condition, seconds=30):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, seconds).until(condition)


def _ready(driver, base):
    from selenium.webdriver.common.by import By

    driver.get(base + "/")
    _wait(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))


def _shown(driver):
    from selenium.webdriver.common.by import By

    return {row.get_attribute("data-name"): (
        float(row.find_element(By.CSS_SELECTOR, "td.score").get_attribute("data-score")),
        row.find_elements(By.TAG_NAME, "td")[-1].text)
        for row in driver.find_elements(By.CSS_SELECTOR, "#results tbody tr")}


@pytest.mark.slow  # reason: a real browser, a process of its own
def test_a_browser_shows_for_a_png_and_a_jpeg_the_scores_and_flags_of_tfae_score(
        run, mnist, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    work, fitted = run
    folder = tmp_path / "photos"
    folder.mkdir()
    digit = next(iter(mnist.test.take(1)))[0].numpy()
    (folder / "digit.png").write_bytes(tf.io.encode_png(digit).numpy())
    colour = np.random.default_rng(4).integers(0, 256, (40, 33, 3), dtype=np.uint8)
    (folder / "photo.jpg").write_bytes(tf.io.encode_jpeg(colour).numpy())
    scored = tfae.score(fitted.run_dir, dataset=folder, verbose=False)
    expected = dict(zip((pathlib.Path(name).name for name in scored.ids), scored.scores))
    threshold = tfae.open_model(fitted.run_dir).detector().threshold_
    driver = _browser()
    try:
        with Server(ServerSettings(str(work / "export"), "digits", port=0,
                                   grpc_port=0)) as server:
            _ready(driver, _base(server))
            facts = {fact.get_attribute("data-fact"): fact.text
                     for fact in driver.find_elements(By.CSS_SELECTOR, "#model dd")}
            assert facts["family"] == "deep" and facts["input"].startswith("28 x 28 x 1")
            assert f"threshold {threshold:.6g}" in facts["calibration"]
            driver.find_element(By.ID, "files").send_keys(
                f"{folder / 'digit.png'}\n{folder / 'photo.jpg'}")
            _wait(driver, lambda d: len(_shown(d)) == 2)
            for name, (score, flag) in _shown(driver).items():
                assert score == pytest.approx(expected[name], rel=1e-5), name
                assert flag == ("flagged" if expected[name] > threshold else "not flagged")
            assert len(driver.find_elements(By.CSS_SELECTOR, "#results canvas")) == 6
            assert driver.find_element(By.ID, "error").is_displayed() is False
            # by keyboard alone: Tab reaches the file picker, then the sort, which sorts
            driver.execute_script("document.activeElement.blur()")
            reached = []
            for _ in range(3):
                ActionChains(driver).send_keys(Keys.TAB).perform()
                reached.append(driver.switch_to.active_element.get_attribute("id"))
            assert reached == ["files", "sort", "csv"], reached
            ActionChains(driver).key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(
                Keys.SHIFT).send_keys(Keys.ENTER).perform()
            names = [row.get_attribute("data-name") for row in
                     driver.find_elements(By.CSS_SELECTOR, "#results tbody tr")]
            assert names == sorted(expected, key=expected.get, reverse=True)
            screenshot = os.environ.get("TFAE_PAGE_SCREENSHOT", str(tmp_path / "page.png"))
            driver.save_screenshot(screenshot)
    finally:
        driver.quit()


@pytest.mark.slow  # reason: a real browser, a process of its own
def test_a_corrupt_file_is_one_line_on_the_page_and_the_server_goes_on(run, mnist, tmp_path):
    from selenium.webdriver.common.by import By

    work, _ = run
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    digit = next(iter(mnist.test.take(1)))[0].numpy()
    (tmp_path / "digit.png").write_bytes(tf.io.encode_png(digit).numpy())
    driver = _browser()
    try:
        with Server(ServerSettings(str(work / "export"), "digits", port=0,
                                   grpc_port=0)) as server:
            _ready(driver, _base(server))
            driver.find_element(By.ID, "files").send_keys(str(tmp_path / "broken.png"))
            _wait(driver, lambda d: d.find_element(By.ID, "error").is_displayed())
            error = driver.find_element(By.ID, "error").text
            assert error.startswith("broken.png: ") and "\n" not in error, error
            assert _shown(driver) == {}
            driver.find_element(By.ID, "files").send_keys(str(tmp_path / "digit.png"))
            _wait(driver, lambda d: len(_shown(d)) == 1)
            assert _get(server.rest_url)[0] == 200
    finally:
        driver.quit()
