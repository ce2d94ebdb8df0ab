// The playground: plain JavaScript, no build step, no network but the service itself. Every URL is relative to the
// page (GET / of `make serve`, or GET <api>/_playground when PLAYGROUND=true), so it works under any stage or host.
"use strict";

const BASE = new URL(".", location.href);  // the API's root, wherever the page is served
const $ = (selector) => document.querySelector(selector);
const state = { key: null, local: null, listing: null };

function enc(key) {  // a key as a URL path: each segment percent-encoded, the slashes kept
  return key.split("/").map(encodeURIComponent).join("/");
}

async function json(url, options) {
  const response = await fetch(url, options);
  if (!response.ok) throw new Error(`${response.status} ${await response.text()}`);
  return response.json();
}

// A URL that works here: as built when signatures are off; signed by the dev server when they are on (the page
// never holds the key); unsigned otherwise (a deployed playground with signatures on shows the 403 it gets).
async function sign(key, query, thumborPath) {
  if (!(state.listing && state.listing.signatures_required && state.local && state.local.signing)) {
    return thumborPath ? `unsafe/${thumborPath}` : `${enc(key)}?${query}`;
  }
  const params = thumborPath ? `thumbor=${encodeURIComponent(thumborPath)}`
    : `key=${encodeURIComponent(key)}&query=${encodeURIComponent(query)}`;
  const signed = await json(new URL(`_local/sign?${params}`, BASE));
  return signed.url.replace(/^\//, "");
}

function fillFormats() {
  // the format menus, as the service's format registry lists them (fm=auto's candidates first)
  const options = (select, names) => select.append(...names.map((name) => new Option(name, name)));
  options($("select[name=fm]"), state.listing.formats);
  options($("#animation select[name=format]"), state.listing.animation_formats);
  options($("#animation select[name=format]"), ["auto"]);
}

async function loadGallery() {
  state.listing = await json(new URL("_playground/originals.json", BASE));
  fillFormats();
  const signing = state.listing.signatures_required;
  $("#mode").textContent = (state.local ? "make serve (local S3). " : "deployed playground. ")
    + (signing ? (state.local && state.local.signing ? "Signatures required: the dev server signs for this page."
      : "Signatures required: unsigned previews are refused.") : "Signatures off: unsigned URLs are served.");
  const list = $("#gallery");
  list.replaceChildren();
  for (const original of state.listing.originals) {
    const item = document.createElement("li");
    item.dataset.key = original.key;
    const img = document.createElement("img");
    img.alt = original.key;
    img.loading = "lazy";
    img.src = new URL(await sign(original.key, "w=150&h=150&fit=cover&fm=webp"), BASE);
    const label = document.createElement("span");
    label.textContent = `${original.key} (${Math.round(original.bytes / 1024)} kB)`;
    item.append(img, label);
    item.addEventListener("click", () => select(original.key));
    if (original.key === state.key) item.classList.add("selected");
    list.append(item);
  }
  if (!state.key && state.listing.originals.length) {
    // opens on the lightest still photo or graphic: its ladder, made on demand for ?picture, comes soonest
    const stills = state.listing.originals.filter((o) => /\.(jpe?g|png)$/i.test(o.key));
    const first = stills.sort((a, b) => a.bytes - b.bytes)[0] || state.listing.originals[0];
    await select(first.key);
  }
}

async function select(key) {
  state.key = key;
  for (const item of document.querySelectorAll("#gallery li")) item.classList.toggle("selected", item.dataset.key === key);
  await Promise.all([showLadder(key), preview(), showPicture()]);
}

async function showLadder(key) {
  $("#ladder-key").textContent = key;
  const body = $("#ladder tbody");
  body.replaceChildren();
  const ladder = await json(new URL(await sign(key, "picture=json"), BASE));
  if (ladder.key !== state.key) return;
  for (const variant of ladder.variants) {
    const row = document.createElement("tr");
    row.className = "variant";
    row.dataset.width = variant.width;
    row.dataset.format = variant.format;
    for (const cell of [variant.width, variant.height, variant.format, variant.bytes]) {
      const td = document.createElement("td");
      td.textContent = cell;
      row.append(td);
    }
    body.append(row);
  }
}

function formValues() {
  const form = new FormData($("#builder"));
  const value = (name) => (form.get(name) || "").toString().trim();
  return { w: value("w"), h: value("h"), fit: value("fit"), fm: value("fm"), q: value("q"), dpr: value("dpr"),
    smart: form.has("smart"), trim: form.has("trim"), filters: value("filters") };
}

// The query API for w, h, fit, fm, q, dpr; a thumbor URL as soon as a thumbor option is set.
async function builtUrl() {
  const v = formValues();
  if (v.smart || v.trim || v.filters) {
    const dpr = Number(v.dpr) || 1;
    const side = (s) => (s ? Math.round(Number(s) * dpr) : 0);
    const filters = [v.filters.replace(/^filters:/, "")].filter(Boolean);
    if (v.fm && v.fm !== "auto") filters.push(`format(${v.fm})`);
    if (v.q) filters.push(`quality(${v.q})`);
    const parts = [v.trim ? "trim" : "", v.fit === "inside" || v.fit === "" ? "fit-in" : "",
      `${side(v.w)}x${side(v.h)}`, v.smart ? "smart" : "",
      filters.length ? `filters:${filters.join(":")}` : "", enc(state.key)].filter(Boolean);
    return sign(state.key, "", parts.join("/"));
  }
  const pairs = ["w", "h", "fit", "fm", "q", "dpr"].filter((n) => v[n]).map((n) => `${n}=${encodeURIComponent(v[n])}`);
  return sign(state.key, pairs.join("&"));
}

let previewSerial = 0;
async function preview() {
  if (!state.key) return;
  const serial = ++previewSerial;
  const url = new URL(await builtUrl(), BASE);
  $("#built-url").value = url.href;
  $("#open-url").href = url.href;
  const started = performance.now();
  const response = await fetch(url, { cache: "no-store" });  // what the service says now, not the browser's copy
  const blob = await response.blob();
  if (serial !== previewSerial) return;
  const info = $("#preview-info");
  if (!response.ok) {
    info.textContent = `${response.status}: ${await blob.text()}`;
    $("#preview").removeAttribute("src");
    return;
  }
  const timing = response.headers.get("Server-Timing") || "";
  const cache = (timing.match(/cache;desc=(\w+)/) || [])[1] || "?";
  const render = (timing.match(/render;dur=([\d.]+)/) || [])[1];
  const img = $("#preview");
  const old = img.src;
  img.src = URL.createObjectURL(blob);
  if (old.startsWith("blob:")) URL.revokeObjectURL(old);
  await img.decode().catch(() => {});
  info.textContent = `${img.naturalWidth}×${img.naturalHeight} · ${blob.size.toLocaleString()} bytes · `
    + `${response.headers.get("Content-Type")} · cache ${cache}`
    + (render ? ` · render ${render} ms` : " · no render") + ` · ${Math.round(performance.now() - started)} ms here`;
  info.dataset.width = img.naturalWidth;
  info.dataset.height = img.naturalHeight;
  info.dataset.cache = cache;
}

async function showPicture() {
  if (!state.key) return;
  const query = "picture=html" + ($("#priority").checked ? "&priority=high" : "");
  const response = await fetch(new URL(await sign(state.key, query), BASE));
  const markup = await response.text();
  $("#picture-markup").value = markup;
  // srcdoc: same origin as this page, so the chosen candidate can be read; the markup's URLs are absolute
  $("#picture-frame").srcdoc = '<!doctype html><meta name="viewport" content="width=device-width">'
    + '<body style="margin:8px">' + markup + "</body>";
}

function watchPicture() {  // which candidate the browser took, as the frame is resized
  setInterval(() => {
    const doc = $("#picture-frame").contentDocument;
    const img = doc && doc.querySelector("img");
    const frame = $("#picture-frame");
    const text = img && img.currentSrc
      ? `${img.currentSrc} (frame ${frame.clientWidth} px wide, image ${img.naturalWidth}×${img.naturalHeight})` : "-";
    if ($("#picture-choice").textContent !== text) $("#picture-choice").textContent = text;
  }, 300);
}

// Upload: a presigned POST straight to the originals bucket; the bucket's event pre-warms the ladder.
async function upload(file) {
  const status = $("#upload-status");
  if (!(state.local && state.local.upload)) {
    status.textContent = "Uploads are for make serve only; on AWS, copy to the originals bucket.";
    return;
  }
  const key = `uploads/${file.name.replace(/[^\w.-]+/g, "-")}`;
  status.textContent = `uploading ${key}...`;
  const form = await json(new URL(`_local/upload-form?key=${encodeURIComponent(key)}`, BASE));
  const body = new FormData();
  for (const [name, value] of Object.entries(form.fields)) body.append(name, value);
  body.append("Content-Type", file.type || "application/octet-stream");
  body.append("file", file);
  const response = await fetch(form.url, { method: "POST", body });
  if (!response.ok && response.type !== "opaque") {
    status.textContent = `upload refused: ${response.status} ${await response.text()}`;
    return;
  }
  status.textContent = `uploaded ${key}; waiting for its ladder (the S3 event pre-warms it)...`;
  for (let tries = 0; tries < 60; tries++) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const listing = await json(new URL("_playground/originals.json", BASE));
    if (listing.originals.some((o) => o.key === key)) break;
  }
  state.key = key;
  await loadGallery();
  await select(key);
  status.textContent = `uploaded ${key}: its ladder is below`;
}

function wireUpload() {
  const drop = $("#drop");
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) drop.addEventListener(name, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    const file = event.dataTransfer.files[0];
    if (file) upload(file);
  });
  $("#file").addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (file) upload(file);
  });
}

// The animation maker: POST /animations with the keys listed (unsigned: with signatures required the service
// answers 403, as for previews), then show it and its download link.
function wireAnimation() {
  const form = $("#animation");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const body = {
      keys: data.get("keys").split("\n").map((k) => k.trim()).filter(Boolean),
      w: Number(data.get("w")), h: Number(data.get("h")), fit: data.get("fit"),
      duration_ms: Number(data.get("duration_ms")), loop: Number(data.get("loop")), format: data.get("format"),
    };
    if (data.get("dither")) body.dither = data.get("dither");
    $("#animation-status").textContent = "making it...";
    const response = await fetch(new URL("animations", BASE), {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const answer = await response.json();
    if (!response.ok) {
      $("#animation-status").textContent = `${response.status} ${answer.code}: ${answer.message}`;
      return;
    }
    const result = $("#animation-result");
    result.src = new URL(answer.url.replace(/^\//, ""), BASE);
    result.hidden = false;
    const link = $("#animation-download");
    link.href = answer.download_url;
    link.hidden = false;
    $("#animation-status").textContent =
      `${answer.frames} frames, ${answer.width}x${answer.height}, ${answer.bytes} bytes, ${answer.format}`;
    $("#animation-status").dataset.frames = answer.frames;
  });
}

async function main() {
  try {
    state.local = await json(new URL("_local/config", BASE));
  } catch {
    state.local = null;  // deployed: no uploads, no signing on the page's behalf
  }
  wireUpload();
  wireAnimation();
  let timer;
  $("#builder").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(preview, 250); });
  $("#priority").addEventListener("change", showPicture);
  watchPicture();
  await loadGallery();
  const keys = $("#animation textarea");
  if (!keys.value) keys.value = state.listing.originals.filter((o) => /\.(jpe?g|png|webp)$/i.test(o.key))
    .slice(0, 3).map((o) => o.key).join("\n");
  document.body.dataset.ready = "1";
}

main().catch((error) => { $("#mode").textContent = `error: ${error.message}`; });
