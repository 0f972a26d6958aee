// tfae serve's page: a client of the model's REST API (TF Serving's :predict), in the browser.
// Every image is sent as {"b64": ...} to the *_bytes signatures any client calls; nothing here
// reads the server's disk. Built with the DOM API only: a file's name is text, never markup.
"use strict";

const state = { model: null, rows: [], descending: true };
const byId = (id) => document.getElementById(id);
const firstLine = (text) => String(text).split("\n")[0];

async function call(url, body) {
  const response = await fetch(url, body === undefined ? {} : {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
  });
  let answer;
  try {
    answer = await response.json();
  } catch (error) {
    throw new Error(`the server answered ${response.status} ${response.statusText}`);
  }
  if (!response.ok) throw new Error(firstLine(answer.error || response.status));
  return answer;
}

function predict(signature, instances) {
  const url = `/v1/models/${encodeURIComponent(state.model.name)}:predict`;
  return call(url, { signature_name: signature, instances }).then((answer) => answer.predictions);
}

function showError(text) {
  const line = byId("error");
  line.textContent = firstLine(text);
  line.hidden = false;
}

function describe(model) {
  const [height, width, channels] = model.image_shape;
  const facts = [
    ["model", model.name],
    ["version", `${model.version} (on disk: ${model.versions.join(", ")})`],
    ["family", model.model || "not recorded by this export"],
    ["input", `${height} x ${width} x ${channels}${model.resize ? `, images resized by ${model.resize}` : ""}`],
    ["code", `${model.latent_dim} numbers`],
    ["signatures", model.signatures.filter((name) => !name.startsWith("__")).join(", ")],
  ];
  const anomaly = model.anomaly;
  facts.push(["calibration", anomaly
    ? `${anomaly.score} score, threshold ${anomaly.threshold.toPrecision(6)}, ${anomaly.contamination === "auto"
      ? "Tukey's upper fence of the run's validation scores (contamination auto)"
      : `flagging ${(anomaly.contamination * 100).toFixed(1)}% of the run's validation images`}`
    : "none: this export has no score signature"]);
  const list = byId("model");
  for (const [term, value] of facts) {
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = term;
    dd.textContent = value;
    dd.dataset.fact = term;
    list.append(dt, dd);
  }
  byId("title").textContent = `tfae serve: ${model.name}`;
  byId("max-images").textContent = model.max_images;
}

// An image as a canvas: rows of pixels of one or three channels in [0, 1], and optionally an
// error map over it (red, as strong as the error against the image's largest).
function canvas(image, errors) {
  const height = image.length;
  const width = image[0].length;
  const element = document.createElement("canvas");
  element.width = width;
  element.height = height;
  const context = element.getContext("2d");
  const pixels = context.createImageData(width, height);
  let largest = 0;
  if (errors) for (const row of errors) for (const pixel of row) for (const value of pixel) largest = Math.max(largest, value);
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) {
      const pixel = image[y][x];
      const [r, g, b] = pixel.length === 3 ? pixel : [pixel[0], pixel[0], pixel[0]];
      const at = 4 * (y * width + x);
      if (errors) {
        const error = errors[y][x].reduce((a, value) => a + value, 0) / errors[y][x].length;
        const strength = largest > 0 ? error / largest : 0;
        const grey = (r + g + b) / 3 * 255 * 0.6;
        pixels.data.set([grey + (255 - grey) * strength, grey * (1 - strength), grey * (1 - strength), 255], at);
      } else {
        pixels.data.set([r * 255, g * 255, b * 255, 255], at);
      }
    }
  }
  context.putImageData(pixels, 0, 0);
  return element;
}

function readBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
    reader.onerror = () => reject(new Error(`cannot read ${file.name}`));
    reader.readAsDataURL(file);
  });
}

async function scoreOne(file) {
  const instance = [{ b64: await readBase64(file) }];
  const has = (name) => state.model.signatures.includes(name);
  const [prepared, reconstructed, scored, codes] = await Promise.all([
    has("prepare_bytes") ? predict("prepare_bytes", instance) : Promise.resolve([null]),
    predict("reconstruct_bytes", instance),
    has("score_bytes") ? predict("score_bytes", instance) : Promise.resolve([null]),
    predict("encode_bytes", instance),
  ]);
  const score = scored[0];
  state.rows.push({
    name: file.name, input: prepared[0], reconstruction: reconstructed[0], codes: codes[0],
    score: score ? score.scores : null, flagged: score ? score.flagged : null,
    errorMap: score ? score.error_maps : null,
  });
}

function render() {
  const body = byId("results").tBodies[0];
  body.replaceChildren();
  for (const row of state.rows) {
    const tr = document.createElement("tr");
    tr.dataset.name = row.name;
    const cells = [document.createElement("th")];
    cells[0].scope = "row";
    cells[0].textContent = row.name;
    for (const content of [
      row.input ? canvas(row.input) : "(an older export: not shown)",
      canvas(row.reconstruction),
      row.errorMap ? canvas(row.input || row.reconstruction, row.errorMap) : "(no score signature)",
    ]) {
      const td = document.createElement("td");
      td.append(content);
      cells.push(td);
    }
    const score = document.createElement("td");
    score.className = "score";
    if (row.score !== null) {
      score.textContent = row.score.toPrecision(6);
      score.dataset.score = String(row.score);
    }
    const flag = document.createElement("td");
    flag.className = row.flagged === null ? "" : row.flagged ? "flag-yes" : "flag-no";
    flag.textContent = row.flagged === null ? "" : row.flagged ? "flagged" : "not flagged";
    tr.append(...cells, score, flag);
    body.append(tr);
  }
  byId("results-section").hidden = state.rows.length === 0;
}

async function take(files) {
  byId("error").hidden = true;
  const limit = state.model.max_images;
  const taken = Array.from(files).slice(0, limit);
  if (files.length > limit) showError(`only the first ${limit} of ${files.length} images are taken at a time`);
  for (const [index, file] of taken.entries()) {
    byId("status").textContent = `scoring ${file.name} (${index + 1} of ${taken.length})`;
    // Marks for the browser's performance tools (and bench/serve_page.py): file taken, shown.
    performance.mark("tfae-taken", { detail: file.name });
    try {
      await scoreOne(file);
      render();
      performance.measure("tfae-shown", { start: "tfae-taken", detail: file.name });
    } catch (error) {
      showError(`${file.name}: ${error.message}`);
    }
  }
  byId("status").textContent = `${state.rows.length} images shown`;
}

function sortByScore() {
  const sign = state.descending ? -1 : 1;
  state.rows.sort((a, b) => sign * ((a.score ?? -Infinity) - (b.score ?? -Infinity)));
  state.descending = !state.descending;
  byId("sort").textContent = `Sort by score, ${state.descending ? "highest" : "lowest"} first`;
  render();
}

function downloadCodes() {
  const width = state.model.latent_dim;
  const header = ["image", ...Array.from({ length: width }, (_, index) => `code_${index}`)];
  const quoted = (text) => `"${String(text).replaceAll('"', '""')}"`;
  const lines = [header.join(","), ...state.rows.map((row) => [quoted(row.name), ...row.codes].join(","))];
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([lines.join("\n") + "\n"], { type: "text/csv" }));
  link.download = `${state.model.name}-codes.csv`;
  link.click();
  URL.revokeObjectURL(link.href);
}

// Codes from N(0, I), seeded (mulberry32 and Box-Muller): the same seed draws the same images
// on this page; tfae sample draws its own with numpy.
function priorCodes(count, size, seed) {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 1) / 4294967297;
  };
  return Array.from({ length: count }, () => Array.from({ length: size },
    () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform())));
}

async function drawSamples() {
  const count = Math.min(64, Math.max(1, Number(byId("count").value) || 1));
  const seed = Math.max(0, Number(byId("seed").value) || 0);
  try {
    const images = await predict("sample", priorCodes(count, state.model.latent_dim, seed));
    byId("samples").replaceChildren(...images.map((image) => canvas(image)));
  } catch (error) {
    showError(`samples: ${error.message}`);
  }
}

async function start() {
  try {
    state.model = await call("/page/model.json");
  } catch (error) {
    showError(`cannot describe the model: ${error.message}`);
    return;
  }
  describe(state.model);
  byId("files").addEventListener("change", async (event) => {
    const files = Array.from(event.target.files);
    event.target.value = "";  // picked again, the same file is taken again
    await take(files);
  });
  const drop = byId("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    take(event.dataTransfer.files);
  });
  byId("sort").addEventListener("click", sortByScore);
  byId("csv").addEventListener("click", downloadCodes);
  if (state.model.signatures.includes("sample")) {
    byId("sample-section").hidden = false;
    byId("draw").addEventListener("click", drawSamples);
  }
  document.body.dataset.ready = "true";
}

start();
