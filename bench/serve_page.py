"""tfae serve's page in headless Chromium: how long it takes to load and to show a result.

Serves the export of a ``deep`` run (784-1000-1000-500-256, one epoch on 1,000 MNIST images:
the time does not depend on how well it is trained) with ``tfae serve``'s server in this process, opens the page in Debian's Chromium
(selenium, ``chromium-driver``), then picks one 28x28 PNG ``--rounds`` times after a first
(which traces the signatures), each time reading the page's own ``tfae-shown`` measure: from the
file taken to its row drawn (four REST requests, the image decoded and drawn). Issue 55's goals:
the page ready in < 1 s on loopback, a 28x28 image's first result < 300 ms after upload.

Usage:
    python bench/serve_page.py [--rounds 20] [--write docs/performance.md]
"""

import argparse
import pathlib
import statistics
import tempfile
import time

import numpy as np
import tensorflow as tf
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

import tfae
from fit_throughput import machine, publish
from tfae.serving import Server, ServerSettings


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--write", type=pathlib.Path)
    args = parser.parse_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="serve-page-"))
    tfae.fit(tfae.FitConfig(model="deep", epochs=1, limit=1000), work / "run", export=True,
             export_dir=work / "deep", verbose=0)
    digit = (np.random.default_rng(0).random((28, 28, 1)) * 255).astype(np.uint8)
    image = work / "digit.png"
    image.write_bytes(tf.io.encode_png(digit).numpy())
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        with Server(ServerSettings(str(work / "deep"), "deep", port=0, grpc_port=0)) as server:
            base = server.rest_url.split("/v1/")[0]
            loads = []
            for _ in range(5):
                started = time.perf_counter()
                driver.get(base + "/")
                WebDriverWait(driver, 10).until(
                    lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
                loads.append(time.perf_counter() - started)
            shown = []
            for _ in range(args.rounds + 1):
                before = len(driver.find_elements(By.CSS_SELECTOR, "#results tbody tr"))
                driver.find_element(By.ID, "files").send_keys(str(image))
                WebDriverWait(driver, 30).until(lambda d: len(d.find_elements(
                    By.CSS_SELECTOR, "#results tbody tr")) > before)
                shown.append(driver.execute_script(
                    "const all = performance.getEntriesByName('tfae-shown');"
                    "return all[all.length - 1].duration;") / 1000)
    finally:
        driver.quit()
    first, rest = shown[0], shown[1:]
    load = statistics.median(loads)
    result = statistics.median(rest)
    report = "\n".join([
        "## tfae serve's page: load and first result (issue 55)",
        "",
        f"`python bench/serve_page.py --rounds {args.rounds}` on {machine()}; headless Chromium "
        "(Debian's) and the server on this machine's loopback, a `deep` export of the default "
        "shape. The page's own measure: from the file taken to its row drawn (four REST requests:"
        " prepare_bytes, reconstruct_bytes, score_bytes, encode_bytes; the error map and images "
        "drawn).",
        "",
        "| | measured | goal | |",
        "|---|---|---|---|",
        f"| page ready (navigation to the model described), median of 5 | {load * 1000:.0f} ms | "
        f"< 1 s | {'met' if load < 1 else '**missed**'} |",
        f"| a 28x28 PNG's result shown after upload, median of {len(rest)} | {result * 1000:.0f}"
        f" ms (range {min(rest) * 1000:.0f}-{max(rest) * 1000:.0f}) | < 300 ms | "
        f"{'met' if result < 0.3 else '**missed**'} |",
        f"| the very first upload (the server traces the bytes signatures) | {first * 1000:.0f} ms"
        " | | |",
        "",
    ])
    publish(report, args.write)


if __name__ == "__main__":
    main()
