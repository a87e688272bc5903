// The nst_tf page: a form that starts runs, a view that follows one, a gallery of every run, a comparison.
// Plain JavaScript, no library, nothing loaded from elsewhere. The server is described in nst_tf/web/app.py.
"use strict";

const $ = (sel) => document.querySelector(sel);
const MAIN = ["strength", "max_size", "num_steps", "save_every", "style_blend_weights"];
const ACTIVE = ["queued", "running"];
const state = {info: null, content: null, styles: [], current: null, run: null, picked: [], timer: null};

(function takeToken() {   // ?token=... in the printed address: keep it as a cookie, drop it from the bar
  const url = new URL(location.href);
  const token = url.searchParams.get("token");
  if (token) {
    document.cookie = `nst_token=${encodeURIComponent(token)}; path=/; SameSite=Strict`;
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
})();

async function api(path, options = {}) {
  const init = {...options, headers: {"X-NST": "1", ...(options.headers || {})}};
  const response = await fetch(path, init);
  let data = {};
  try { data = await response.json(); } catch (e) { data = {error: `the server answered ${response.status}`}; }
  if (response.status === 401) { $("#token-box").hidden = false; }
  if (!response.ok) throw new Error(data.error || `the server answered ${response.status}`);
  return data;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v); else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

const fileUrl = (rel, bust) => `/files/${rel.split("/").map(encodeURIComponent).join("/")}` + (bust ? `?v=${bust}` : "");

// ---- tabs
function showTab(name) {
  document.querySelectorAll(".tab").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
  document.querySelectorAll(".pane").forEach((p) => p.classList.toggle("active", p.id === name));
  if (name === "gallery") loadGallery();
  if (name === "compare") showCompare();
}
document.querySelectorAll(".tab").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));

// ---- the form
function optionInput(opt) {
  let input;
  if (opt.choices.length) {
    input = el("select", {id: `opt-${opt.name}`});
    for (const c of opt.choices) input.append(el("option", {value: c, text: c}));
    input.value = opt.default;
  } else if (opt.kind === "bool") {
    input = el("select", {id: `opt-${opt.name}`});
    for (const c of ["true", "false"]) input.append(el("option", {value: c, text: c}));
    input.value = String(opt.default);
  } else {
    input = el("input", {id: `opt-${opt.name}`, type: "text", placeholder: opt.default === null ? "default" : String(opt.default)});
  }
  input.dataset.name = opt.name;
  input.dataset.default = opt.default === null ? "" : String(opt.default);
  return el("label", {title: opt.help}, opt.name.replaceAll("_", " "), input);
}

function renderForm(info) {
  $("#main-options").replaceChildren();
  $("#more-options").replaceChildren();
  for (const opt of info.options) {
    (MAIN.includes(opt.name) ? $("#main-options") : $("#more-options")).append(optionInput(opt));
  }
  $("#model").replaceChildren(...info.stylizers.map((n) => el("option", {value: n, text: n})));
  const apply = $("#mode option[value=apply]");   // offered once a run folder holds a trained stylizer
  apply.disabled = !info.stylizers.length;
  apply.textContent = info.stylizers.length ? "Trained stylizer: one pass over the photo"
    : "Trained stylizer (none yet: train one with run.py --mode=train)";
  $("#outputs").textContent = info.outputs;
  modeChanged();
}

function modeChanged() {
  const mode = $("#mode").value;
  $("#photo-drop").hidden = mode === "texture";
  $("#style-drop").hidden = mode === "content" || mode === "apply";
  $("#model-row").hidden = mode !== "apply";
}
$("#mode").addEventListener("change", modeChanged);

function showThumbs() {
  const thumb = (id, kind) => el("span", {class: "thumb"},
    el("img", {src: `/uploads/${encodeURIComponent(id)}`, alt: id, title: id}),
    el("button", {type: "button", class: "x", title: "remove", text: "×", onclick: () => {
      if (kind === "content") state.content = null; else state.styles = state.styles.filter((s) => s !== id);
      showThumbs();
    }}));
  $("#photo-thumbs").replaceChildren(...(state.content ? [thumb(state.content, "content")] : []));
  $("#style-thumbs").replaceChildren(...state.styles.map((s) => thumb(s, "style")));
}

async function upload(files, kind) {
  $("#form-error").textContent = "";
  for (const file of files) {
    try {
      const data = await api(`/api/uploads?name=${encodeURIComponent(file.name)}`, {method: "POST", body: file});
      if (kind === "content") state.content = data.id;
      else if (!state.styles.includes(data.id)) state.styles.push(data.id);
    } catch (e) {
      $("#form-error").textContent = e.message;
    }
  }
  showThumbs();
}

for (const [drop, input, kind] of [["#photo-drop", "#photo-input", "content"], ["#style-drop", "#style-input", "style"]]) {
  $(input).addEventListener("change", (e) => { upload([...e.target.files], kind); e.target.value = ""; });
  $(drop).addEventListener("dragover", (e) => { e.preventDefault(); $(drop).classList.add("over"); });
  $(drop).addEventListener("dragleave", () => $(drop).classList.remove("over"));
  $(drop).addEventListener("drop", (e) => {
    e.preventDefault();
    $(drop).classList.remove("over");
    const files = [...e.dataTransfer.files];
    upload(kind === "content" ? files.slice(0, 1) : files, kind);
  });
}

function formData() {
  const options = {};
  document.querySelectorAll("[data-name]").forEach((input) => {
    const value = input.value.trim();
    if (value !== "" && value !== input.dataset.default) options[input.dataset.name] = value;
  });
  const sweep = $("#sweep").value.split("\n").map((s) => s.trim()).filter(Boolean);
  return {mode: $("#mode").value, content: state.content, style: state.styles, model: $("#model").value,
          options, sweep};
}

$("#run-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("#form-error").textContent = "";
  try {
    const data = await api("/api/runs", {method: "POST", headers: {"Content-Type": "application/json"},
                                         body: JSON.stringify(formData())});
    openRun(data.name);
  } catch (err) {
    $("#form-error").textContent = err.message;
  }
});

function prefill(form) {
  $("#mode").value = form.mode;
  document.querySelectorAll("[data-name]").forEach((input) => {
    const v = form.options[input.dataset.name];
    input.value = v === undefined ? (input.tagName === "SELECT" ? input.dataset.default : "") : v;
  });
  $("#sweep").value = (form.sweep || []).join("\n");
  state.content = form.content || null;
  state.styles = form.style || [];
  if (form.model) $("#model").value = form.model;
  modeChanged();
  showThumbs();
  $("#form-error").textContent = (form.warnings || []).join(" ");
}

// ---- following one run
function openRun(name) {
  state.current = name;
  showTab("make");
  $("#run-view").hidden = false;
  $("#run-error").textContent = "";
  $("#live-image").removeAttribute("src");
  $("#live-image").hidden = true;
  $("#image-caption").textContent = "no picture yet: the first comes with the first snapshot";
  $("#plot").replaceChildren();
  refreshRun();
}

function fmtTime(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "?";
  seconds = Math.round(seconds);
  return seconds >= 60 ? `${Math.floor(seconds / 60)} min ${seconds % 60} s` : `${seconds} s`;
}

async function refreshRun() {
  clearTimeout(state.timer);
  const name = state.current;
  if (!name) return;
  let run;
  try { run = await api(`/api/runs/${encodeURIComponent(name)}`); } catch (e) {
    $("#run-error").textContent = e.message;
    state.timer = setTimeout(refreshRun, 2000);
    return;
  }
  if (name !== state.current) return;
  state.run = run;
  const job = run.job;
  const active = ACTIVE.includes(run.status);
  $("#run-name").textContent = name;
  $("#status").textContent = run.status;
  $("#status").className = `badge ${run.status}`;
  const rows = run.losses.rows;
  const steps = run.losses.columns.indexOf("step");
  const lastRow = rows.length ? rows[rows.length - 1] : null;
  const total = (job && job.total) || Number(run.flags.num_steps) || null;
  const step = (active && job && job.step) || (lastRow ? lastRow[steps] : 0) || run.summary.steps || 0;
  $("#bar").style.width = total ? `${Math.min(100, 100 * step / total)}%` : "0";
  let stats = `step ${step}${total ? ` of ${total}` : ""}`;
  const rate = (active && job && job.rate) || run.summary.steps_per_s;
  if (rate) stats += ` · ${rate >= 1 ? rate.toFixed(1) + " steps/s" : (1 / rate).toFixed(1) + " s/step"}`;
  if (active && job && job.left) stats += ` · ${job.left} left`;
  else if (active && rate && total) stats += ` · ${fmtTime((total - step) / rate)} left`;
  if (run.summary.wall_time_s) stats += ` · took ${fmtTime(run.summary.wall_time_s)}`;
  if (job && job.state === "queued") stats = "queued: starts when the run before it ends";
  if (job && job.state === "running" && !job.step && !rows.length) stats = "starting (loading TensorFlow and the network)…";
  $("#stats").textContent = stats;
  if (run.image) {
    const img = $("#live-image");
    const src = fileUrl(run.image, Math.round(run.modified * 1000));
    if (img.getAttribute("src") !== src) img.src = src;
    img.hidden = false;
    $("#image-caption").textContent = run.image.split("/").slice(1).join("/");
  }
  drawPlot(run.losses);
  $("#cells").replaceChildren(...(run.cells || []).map((c) => el("figure", {},
    c.image ? el("img", {src: fileUrl(c.image, Math.round(run.modified * 1000)), alt: c.name}) : el("div", {class: "empty"}),
    el("figcaption", {text: `${c.name} · ${c.status}`}))));
  $("#stop").hidden = !active;
  $("#resume").hidden = active || !run.resumable || run.status === "done";
  $("#extend").parentElement.hidden = active || run.kind === "sweep" || !run.resumable;
  $("#again").hidden = !run.files || run.files.length === 0;
  const has = (f) => (run.files || []).includes(f);
  $("#dl-result").hidden = !has("result.png");
  $("#dl-result").href = fileUrl(`${name}/result.png`) + "?download=1";
  const flags = has("run.flags") ? "run.flags" : "sweep.flags";
  $("#dl-flags").hidden = !has(flags);
  $("#dl-flags").textContent = flags;
  $("#dl-flags").href = fileUrl(`${name}/${flags}`) + "?download=1";
  $("#run-error").textContent = (job && job.error) || "";
  $("#log").textContent = job ? job.log.join("\n") : "";
  $("#snapshots").replaceChildren(...run.snapshots.map((s) => el("img", {src: fileUrl(s), title: s.split("/").pop(), loading: "lazy"})));
  $("#settings").replaceChildren(...Object.entries(run.flags).map(([k, v]) => el("tr", {}, el("th", {text: k}), el("td", {text: v}))));
  if (active) state.timer = setTimeout(refreshRun, 1000);
}

$("#stop").addEventListener("click", async () => {
  try { await api(`/api/runs/${encodeURIComponent(state.current)}/stop`, {method: "POST"}); } catch (e) { $("#run-error").textContent = e.message; }
  refreshRun();
});

async function resume(numSteps) {
  $("#run-error").textContent = "";
  try {
    await api(`/api/runs/${encodeURIComponent(state.current)}/resume`, {method: "POST",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify(numSteps ? {num_steps: numSteps} : {})});
  } catch (e) { $("#run-error").textContent = e.message; }
  refreshRun();
}
$("#resume").addEventListener("click", () => resume(null));
$("#extend").addEventListener("click", () => {
  const done = (state.run && state.run.summary.steps) || Number(state.run.flags.num_steps) || 0;
  resume(done + Number($("#extend-steps").value || 0));
});
$("#again").addEventListener("click", async () => {
  try { prefill(await api(`/api/runs/${encodeURIComponent(state.current)}/form`)); window.scrollTo(0, 0); }
  catch (e) { $("#run-error").textContent = e.message; }
});

// ---- the loss plot: one polyline per term, log scale, drawn as SVG here (no plotting library)
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
function drawPlot(losses) {
  const svg = $("#plot");
  const ns = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  const cols = losses.columns;
  const si = cols.indexOf("step");
  // The weighted terms (what the optimizer adds up) and the total; else every column without a layer name.
  const named = cols.map((c, i) => [c, i]).filter(([c]) => c !== "step" && c !== "wall_s");
  let terms = named.filter(([c]) => c === "total" || (c.startsWith("weighted/") && c.split("/").length === 2));
  if (terms.length < 2) terms = named.filter(([c]) => !c.includes("/"));
  terms = terms.slice(0, 8);
  const rows = losses.rows;
  if (!rows.length || !terms.length) {
    const t = document.createElementNS(ns, "text");
    t.setAttribute("x", 20); t.setAttribute("y", 130); t.textContent = "the curves appear at the first snapshot";
    svg.append(t);
    return;
  }
  const W = 420, H = 260, L = 50, R = 110, T = 10, B = 25;
  const xs = rows.map((r) => r[si]);
  const vals = rows.flatMap((r) => terms.map(([, i]) => r[i])).filter((v) => v > 0 && isFinite(v));
  const lo = Math.log10(Math.min(...vals)), hi = Math.log10(Math.max(...vals)) + 1e-9;
  const x0 = Math.min(...xs), x1 = Math.max(...xs) + 1e-9;
  const px = (x) => L + (W - L - R) * (x - x0) / (x1 - x0 || 1);
  const py = (v) => T + (H - T - B) * (1 - (Math.log10(v) - lo) / (hi - lo || 1));
  const line = (x1_, y1_, x2_, y2_, color) => {
    const l = document.createElementNS(ns, "line");
    Object.entries({x1: x1_, y1: y1_, x2: x2_, y2: y2_, stroke: color}).forEach(([k, v]) => l.setAttribute(k, v));
    svg.append(l);
  };
  const text = (x, y, s, color = "#444", anchor = "start") => {
    const t = document.createElementNS(ns, "text");
    t.setAttribute("x", x); t.setAttribute("y", y); t.setAttribute("fill", color); t.setAttribute("text-anchor", anchor);
    t.textContent = s; svg.append(t);
  };
  line(L, H - B, W - R, H - B, "#999");
  line(L, T, L, H - B, "#999");
  text(L - 4, T + 8, `1e${Math.round(hi)}`, "#444", "end");
  text(L - 4, H - B, `1e${Math.round(lo)}`, "#444", "end");
  text(L, H - 6, String(Math.round(x0)));
  text(W - R, H - 6, `step ${Math.round(x1)}`, "#444", "end");
  terms.forEach(([name, i], k) => {
    const pts = rows.filter((r) => r[i] > 0 && isFinite(r[i])).map((r) => `${px(r[si]).toFixed(1)},${py(r[i]).toFixed(1)}`);
    const p = document.createElementNS(ns, "polyline");
    p.setAttribute("points", pts.join(" ")); p.setAttribute("fill", "none");
    p.setAttribute("stroke", COLORS[k % COLORS.length]); p.setAttribute("stroke-width", name === "total" ? 2 : 1.2);
    svg.append(p);
    text(W - R + 8, T + 12 + 16 * k, name, COLORS[k % COLORS.length]);
  });
}

// ---- the gallery
function card(run) {
  const when = new Date(run.modified * 1000).toLocaleString();
  const f = run.flags;
  const what = run.kind === "sweep" ? `sweep: ${(f.sweep || "").replaceAll(" | ", " × ")}` :
    [f.mode, f.max_size && `${f.max_size} px`, f.num_steps && `${f.num_steps} steps`].filter(Boolean).join(" · ");
  const box = el("input", {type: "checkbox", title: "compare", onclick: (e) => {
    e.stopPropagation();
    state.picked = e.target.checked ? [...state.picked.filter((n) => n !== run.name), run.name].slice(-2)
                                    : state.picked.filter((n) => n !== run.name);
    document.querySelectorAll(".card input").forEach((c) => { c.checked = state.picked.includes(c.closest(".card").dataset.name); });
  }});
  box.checked = state.picked.includes(run.name);
  return el("div", {class: "card", "data-name": run.name, onclick: () => openRun(run.name)},
    run.image ? el("img", {src: fileUrl(run.image, Math.round(run.modified * 1000)), alt: run.name, loading: "lazy"}) : el("div", {class: "empty"}),
    el("div", {class: "meta"}, el("strong", {text: run.name}), el("span", {class: `badge ${run.status}`, text: run.status}),
      el("small", {text: `${what} · ${when}`}), box));
}

async function loadGallery() {
  try {
    const data = await api("/api/runs");
    const key = JSON.stringify([data.runs.map((r) => [r.name, r.status, r.image, r.modified]), data.pending.map((j) => j.name)]);
    if (key === state.galleryKey) return;   // unchanged: keep the cards (and a click in progress)
    state.galleryKey = key;
    const pending = data.pending.map((j) => el("div", {class: "card", "data-name": j.name, onclick: () => openRun(j.name)},
      el("div", {class: "empty"}), el("div", {class: "meta"}, el("strong", {text: j.name}), el("span", {class: "badge queued", text: "queued"}))));
    $("#cards").replaceChildren(...pending, ...data.runs.map(card));
  } catch (e) {
    $("#cards").replaceChildren(el("p", {class: "error", text: e.message}));
  }
}

// ---- comparing two runs
async function showCompare() {
  const view = $("#compare-view");
  if (state.picked.length !== 2) { view.replaceChildren(el("p", {class: "hint", text: "Tick two runs in the gallery."})); return; }
  try {
    const [a, b] = await Promise.all(state.picked.map((n) => api(`/api/runs/${encodeURIComponent(n)}`)));
    const keys = [...new Set([...Object.keys(a.flags), ...Object.keys(b.flags)])].filter((k) => a.flags[k] !== b.flags[k]);
    const side = (r) => el("figure", {}, r.image ? el("img", {src: fileUrl(r.image), alt: r.name}) : el("div", {class: "empty"}),
      el("figcaption", {text: `${r.name} · ${r.status}`}));
    const table = el("table", {}, el("tr", {}, el("th", {text: "differs"}), el("th", {text: a.name}), el("th", {text: b.name})),
      ...keys.map((k) => el("tr", {}, el("th", {text: k}), el("td", {text: a.flags[k] ?? "—"}), el("td", {text: b.flags[k] ?? "—"}))));
    view.replaceChildren(el("div", {class: "pair"}, side(a), side(b)), table);
  } catch (e) { view.replaceChildren(el("p", {class: "error", text: e.message})); }
}

// ---- start
$("#token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  document.cookie = `nst_token=${encodeURIComponent($("#token").value.trim())}; path=/; SameSite=Strict`;
  $("#token-box").hidden = true;
  init();
});

async function init() {
  try {
    state.info = await api("/api/info");
  } catch (e) { $("#form-error").textContent = e.message; return; }
  $("#token-box").hidden = true;
  renderForm(state.info);
  loadGallery();
}
setInterval(() => { if ($("#gallery").classList.contains("active")) loadGallery(); }, 3000);
init();
