// The streamrec console: polls /console/state, draws the samples the scorer keeps (the
// last hour at first, then the new ones) as SVG charts, and calls the admin model
// actions after a confirmation.
"use strict";

// -- axes (pure; the browser test calls them) ------------------------------------------
// Ticks for a value axis covering [lo, hi]: distinct round numbers (steps of 1, 2, 2.5 or
// 5 times a power of ten; whole numbers only when `integer`), about `count` of them, the
// first at or below lo and the last at or above hi. A flat series gets an axis one unit
// wide (0..1 for a flat zero).
function niceTicks(lo, hi, integer, count) {
  const want = Math.max(2, count || 5);
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) { lo = 0; hi = 1; }
  if (hi < lo) { const swap = lo; lo = hi; hi = swap; }
  if (hi === lo) {
    if (lo > 0) lo = 0;
    else if (lo < 0) hi = 0;
    else hi = 1;
  }
  const rough = (hi - lo) / (want - 1);
  const magnitude = Math.pow(10, Math.floor(Math.log10(rough)));
  let step = 10 * magnitude;
  for (const m of [1, 2, 2.5, 5]) {
    if (integer && m === 2.5 && magnitude < 10) continue;
    if (rough <= m * magnitude * (1 + 1e-9)) { step = m * magnitude; break; }
  }
  if (integer) step = Math.max(1, Math.round(step));
  const clean = (x) => Number(x.toPrecision(12)) + 0; // no 0.30000000000000004, no -0
  const first = Math.floor(lo / step + 1e-9), last = Math.ceil(hi / step - 1e-9);
  const ticks = [];
  for (let i = first; i <= last; i++) ticks.push(clean(i * step));
  return { lo: ticks[0], hi: ticks[ticks.length - 1], step: step, ticks: ticks };
}

// Labels for niceTicks' ticks: one unit for the whole axis (k from 10 000, M, G, T, by the
// largest tick) and as many decimals as the step needs, so 0, 0.5M, 1.0M, 1.5M.
function tickLabels(ticks, step) {
  const top = Math.max(0, ...ticks.map(Math.abs));
  let unit = 1, suffix = "";
  for (const [size, name, from] of [[1e12, "T", 1e12], [1e9, "G", 1e9], [1e6, "M", 1e6],
    [1e3, "k", 1e4]]) {
    if (top >= from) { unit = size; suffix = name; break; }
  }
  const scaled = step / unit;
  let digits = 0;
  for (let x = scaled; digits < 12 && (x < 1 || Math.abs(Math.round(x) - x) > 1e-6 * x);
    x = scaled * 10 ** digits) digits++;
  return ticks.map((v) => (v === 0 ? "0" : (v / unit).toFixed(digits) + suffix));
}

(function () {
  const POLL_MS = 3000;
  const MAX_POINTS = 720; // one hour of the scorer's samples (one per 5 s)
  const TOKEN_KEY = "streamrec.token";
  const COLORS = ["#2859c5", "#d9730d", "#1d7a46", "#b42318", "#7b3fb8", "#0f7b8a"];
  const SVG = "http://www.w3.org/2000/svg";

  const needsToken = document.body.dataset.auth === "bearer";
  let token = sessionStorage.getItem(TOKEN_KEY) || "";
  let lastSample = null; // the newest sample drawn: for rates, and ?since= of the next poll
  let timer = null;
  let k = 10;
  const series = { in: [], out: [], hit: [], mrr: [], age: [], dlq: {}, lag: {} };

  const $ = (id) => document.getElementById(id);

  function headers(extra) {
    const h = Object.assign({}, extra || {});
    if (token) h.Authorization = "Bearer " + token;
    return h;
  }

  function fmt(x, digits) {
    if (x === null || x === undefined || Number.isNaN(x)) return "–";
    return Number(x).toFixed(digits === undefined ? 4 : digits);
  }

  function duration(s) {
    if (s === null || s === undefined) return "–";
    if (s < 120) return Math.round(s) + " s";
    if (s < 7200) return Math.round(s / 60) + " min";
    return (s / 3600).toFixed(1) + " h";
  }

  function push(list, t, value) {
    if (value === null || value === undefined || !Number.isFinite(value)) return;
    list.push({ t: t, v: value });
    if (list.length > MAX_POINTS) list.shift();
  }

  // -- charts ---------------------------------------------------------------------------
  function el(name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    for (const key in attrs) node.setAttribute(key, attrs[key]);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function clock(t) {
    return new Date(t * 1000).toISOString().slice(11, 19);
  }

  // lines: [{name, points: [{t, v}]}]; draws the value axis (niceTicks; whole numbers
  // only when `integer`), the time span and a legend.
  function lineChart(svg, lines, integer) {
    const box = svg.viewBox.baseVal;
    const W = box.width, H = box.height, L = 48, R = 8, T = 18, B = 20;
    svg.replaceChildren();
    const all = lines.flatMap((line) => line.points);
    if (all.length < 2) {
      svg.appendChild(el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" },
        "collecting data…"));
      return;
    }
    const t0 = Math.min(...all.map((p) => p.t)), t1 = Math.max(...all.map((p) => p.t));
    const scale = niceTicks(Math.min(0, ...all.map((p) => p.v)),
      Math.max(...all.map((p) => p.v)), integer);
    const lo = scale.lo, hi = scale.hi;
    const x = (t) => L + ((t - t0) / Math.max(t1 - t0, 1e-9)) * (W - L - R);
    const y = (v) => H - B - ((v - lo) / (hi - lo)) * (H - T - B);
    const labels = tickLabels(scale.ticks, scale.step);
    scale.ticks.forEach((v, i) => {
      svg.appendChild(el("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "axis" }));
      svg.appendChild(el("text", { x: L - 4, y: y(v) + 3, "text-anchor": "end",
        class: "label tick" }, labels[i]));
    });
    svg.appendChild(el("text", { x: L, y: H - 4, class: "label" }, clock(t0)));
    svg.appendChild(el("text", { x: W - R, y: H - 4, "text-anchor": "end", class: "label" },
      clock(t1)));
    lines.forEach((line, i) => {
      const color = COLORS[i % COLORS.length];
      if (line.points.length) {
        const d = line.points.map((p, j) => (j ? "L" : "M") + x(p.t).toFixed(1) + " " +
          y(p.v).toFixed(1)).join(" ");
        svg.appendChild(el("path", { d: d, class: "line", stroke: color, "data-series": line.name }));
      }
      svg.appendChild(el("text", { x: L + 4 + i * 110, y: 11, class: "label", fill: color },
        "■ " + line.name));
    });
  }

  // One bar per kept version at its creation time, as tall as the events it learned.
  function versionsChart(svg, rows) {
    const box = svg.viewBox.baseVal;
    const W = box.width, H = box.height, L = 60, R = 12, T = 14, B = 22;
    svg.replaceChildren();
    const kept = rows.filter((r) => r.verified && r.created_at);
    if (!kept.length) {
      svg.appendChild(el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" },
        "no versions kept yet"));
      return;
    }
    const t0 = Math.min(...kept.map((r) => r.created_at));
    const t1 = Math.max(...kept.map((r) => r.created_at));
    const most = Math.max(1, ...kept.map((r) => r.events || 0));
    const span = Math.max(t1 - t0, 1e-9);
    const barW = Math.max(4, Math.min(28, (W - L - R) / (kept.length * 1.6)));
    const x = (t) => (kept.length === 1 ? (L + W - R) / 2 : L + barW / 2 +
      ((t - t0) / span) * (W - L - R - barW));
    const y = (v) => H - B - (v / most) * (H - T - B);
    svg.appendChild(el("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, class: "axis" }));
    svg.appendChild(el("text", { x: L - 4, y: T + 3, "text-anchor": "end", class: "label" },
      String(most)));
    for (const r of kept) {
      const cx = x(r.created_at);
      const bar = el("rect", { x: cx - barW / 2, y: y(r.events || 0), width: barW,
        height: Math.max(1, H - B - y(r.events || 0)), class: r.current ? "bar current" : "bar",
        "data-version": r.version });
      bar.appendChild(el("title", {}, "v" + r.version + " · " + r.created + " · " +
        (r.events || 0) + " events"));
      svg.appendChild(bar);
      svg.appendChild(el("text", { x: cx, y: H - 6, "text-anchor": "middle", class: "label" },
        (r.current ? "● v" : "v") + r.version));
    }
  }

  // -- state ----------------------------------------------------------------------------
  function badge(id, text, level) {
    const node = $(id);
    node.textContent = text;
    node.className = "badge " + level;
  }

  // One sample of the scorer's (`history` in /console/state): rates from the counters
  // of the sample before, the rest as it is. A sample already drawn is skipped.
  function addSample(p) {
    const t = p.t, q = lastSample;
    if (q && t <= q.t) return;
    // Counters start again at 0 when the scorer restarts: skip that step.
    if (q && p.events_in >= q.events_in && p.events_out >= q.events_out) {
      const dt = t - q.t;
      push(series.in, t, (p.events_in - q.events_in) / dt);
      push(series.out, t, (p.events_out - q.events_out) / dt);
      const reasons = new Set(Object.keys(p.dead_letters).concat(Object.keys(series.dlq)));
      for (const reason of reasons) {
        series.dlq[reason] = series.dlq[reason] || [];
        const now = p.dead_letters[reason] || 0, before = q.dead_letters[reason] || 0;
        push(series.dlq[reason], t, Math.max(0, now - before) / dt);
      }
    }
    push(series.hit, t, p["hit@" + k]);
    push(series.mrr, t, p["mrr@" + k]);
    push(series.age, t, p.age_s);
    for (const role in p.lag || {}) {
      series.lag[role] = series.lag[role] || [];
      push(series.lag[role], t, p.lag[role]);
    }
    lastSample = p;
  }

  function cell(row, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  }

  // One badge per finished experiment a version served in: what was decided, this
  // version's arm, and the challenger's hit@k lift over the champion with its 95 % CI.
  function outcomeBadge(o) {
    const f = o.figures || {};
    const d = f["difference_hit@" + k];
    const won = (o.action === "promote") === (o.arm === "challenger");
    const span = document.createElement("span");
    span.className = "badge outcome " + (won ? "ok" : "warn");
    span.dataset.experiment = o.experiment;
    span.textContent = o.action + " as " + o.arm + (d ? " · Δhit@" + k + " " +
      signed(d.difference) + " [" + signed(d.ci95 && d.ci95[0]) + ", " +
      signed(d.ci95 && d.ci95[1]) + "]" : "");
    span.title = "experiment " + o.experiment + ", decided by " + (o.by || "?") +
      (o.at ? " at " + new Date(o.at * 1000).toISOString().slice(0, 19) + "Z" : "") +
      (o.reason ? ": " + o.reason : "");
    return span;
  }

  function signed(x) {
    const text = fmt(x);
    return x > 0 ? "+" + text : text;
  }

  function renderVersions(s) {
    const body = $("versions").querySelector("tbody");
    body.replaceChildren();
    for (const r of s.versions) {
      const tr = document.createElement("tr");
      tr.dataset.version = r.version;
      if (r.is_served === undefined ? r.current : r.is_served) tr.className = "current";
      const served = r.served || {};
      cell(tr, "v" + r.version);
      cell(tr, r.created || "–");
      cell(tr, r.origin);
      cell(tr, r.events === undefined ? "–" : String(r.events));
      cell(tr, fmt(r["hit@" + k]));
      cell(tr, fmt(r["mrr@" + k]));
      cell(tr, fmt(served["hit@" + k]));
      cell(tr, fmt(served["mrr@" + k]));
      cell(tr, served.judged === undefined ? "–" : String(served.judged));
      const onAir = r.is_served === undefined ? r.current : r.is_served;
      cell(tr, r.verified ? (onAir ? (r.pinned ? "served · pinned" : "served") : "kept")
        : "refused: " + (r.error || "?"), "state");
      const outcomes = cell(tr, "", "experiments");
      for (const o of r.experiments || []) outcomes.appendChild(outcomeBadge(o));
      const td = cell(tr, "");
      if (r.verified && !r.current) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "admin promote";
        button.textContent = "Promote";
        button.addEventListener("click", () => act("promote", { version: r.version },
          "Serve version " + r.version + " and pin it? The trainer's new versions will not " +
          "be served until you follow again."));
        td.appendChild(button);
      }
      body.appendChild(tr);
    }
    $("versions-error").textContent = s.versions_error || "";
    const current = s.versions.find((r) => r.current);
    $("pin-state").textContent = current ? (current.pinned ?
      "current v" + current.version + " is pinned (promoted or rolled back)" :
      "following the trainer (current v" + current.version + ")") : "";
    versionsChart($("chart-versions"), s.versions);
  }

  function renderLag(s) {
    const roles = Object.keys(series.lag).sort();
    lineChart($("chart-lag"), roles.map((role) => ({ name: role, points: series.lag[role] })),
      true);
    const lag = s.consumer_lag;
    const body = $("lag").querySelector("tbody");
    body.replaceChildren();
    $("lag-error").textContent = lag && lag.error ? "lag not read: " + lag.error : "";
    $("lag-measured").textContent = lag && lag.measured_at ? "as of " + clock(lag.measured_at) +
      " UTC" : "";
    if (!lag) return;
    for (const r of lag.partitions) {
      const tr = document.createElement("tr");
      tr.dataset.role = r.role;
      tr.dataset.partition = r.partition;
      cell(tr, r.role);
      cell(tr, r.group);
      cell(tr, String(r.partition));
      cell(tr, r.committed === null ? "none" : String(r.committed));
      cell(tr, String(r.high));
      cell(tr, String(r.lag), r.lag > 0 ? "lag behind" : "lag");
      body.appendChild(tr);
    }
  }

  function renderExperiment(s) {
    const e = s.experiment;
    $("experiment").hidden = !e;
    if (!e) return;
    $("experiment-id").textContent = e.id;
    $("experiment-what").textContent = (e.shadow ? "shadow: " : "") + "challenger " +
      e.challenger + " gets " + Math.round(e.share * 100) + " % of users" +
      (e.auto ? "; the gate decides" : "");
    const body = $("arms").querySelector("tbody");
    body.replaceChildren();
    const f = e.figures || {};
    for (const arm of ["champion", "challenger"]) {
      const a = f[arm] || {};
      const tr = document.createElement("tr");
      tr.dataset.arm = arm;
      cell(tr, arm);
      cell(tr, arm === "champion" ? e.champion : e.challenger);
      cell(tr, a.judged === undefined ? "–" : String(a.judged));
      cell(tr, fmt(a["hit@" + k]));
      cell(tr, fmt(a["mrr@" + k]));
      body.appendChild(tr);
    }
    const d = f["difference_hit@" + k];
    $("experiment-difference").textContent = d ? "challenger − champion hit@" + k + ": " +
      fmt(d.difference) + " (95 % CI " + fmt(d.ci95 && d.ci95[0]) + " … " +
      fmt(d.ci95 && d.ci95[1]) + ")" : "";
  }

  function render(s) {
    k = s.k;
    for (const th of document.querySelectorAll(".k-title")) {
      th.textContent = th.dataset.name + "@" + k;
    }
    const h = s.health;
    // A scorer can be fine while nothing learns: no trainer (or a stalled one) for the
    // namespace served turns the overall status amber (missing) or red (stalled).
    const tr = s.trainer;
    let status = h.status;
    let level = h.status === "ok" ? "ok" : h.status === "degraded" ? "warn" : "bad";
    if (level === "ok" && (!tr || tr.stalled)) {
      status = tr ? "trainer stalled" : "no trainer";
      level = tr ? "bad" : "warn";
    }
    badge("badge-status", status, level);
    badge("badge-kafka", "Kafka " + (h.kafka ? "up" : "down"), h.kafka ? "ok" : "bad");
    badge("badge-redis", "Redis " + (h.redis ? "up" : "down"), h.redis ? "ok" : "bad");
    const reader = h.consumer;
    if (reader) {
      badge("badge-consumer", reader.stalled ? "consumer STALLED (" + reader.behind +
        " behind)" : "consumer ok", reader.stalled ? "bad" : "ok");
    } else {
      badge("badge-consumer", "consumer ?", "warn");
    }
    const t = s.trainer;
    badge("badge-trainer", !t ? "no trainer" : t.stalled ? "trainer STALLED" :
      "trainer " + (t.catching_up ? "catching up" : "learning"),
      !t || t.stalled ? "bad" : "ok");
    const sv = s.serving;
    $("model-name").textContent = sv ? (sv.namespace === sv.model_name ? sv.model_name :
      sv.model_name + " → " + sv.namespace) + " · " + sv.reason : s.served.model_name;
    $("updated").textContent = "updated " + clock(s.time) + " UTC";
    const v = s.served;
    $("served-version").textContent = v.version ? "v" + v.version : "cold start";
    $("served-class").textContent = v.model_class || "";
    $("served-hit-title").textContent = "Served hit@" + k;
    $("served-mrr-title").textContent = "Served MRR@" + k;
    $("served-hit").textContent = fmt(v["hit@" + k]);
    $("served-mrr").textContent = fmt(v["mrr@" + k]);
    $("served-judged").textContent = v.judged + " judged views (rolling)";
    $("freshness").textContent = duration(v.age_s);
    $("rejected").textContent = String(v.snapshots_rejected);
    $("swaps").textContent = v.swaps + " swaps since start";
    const c = s.counters;
    $("events").textContent = c.events_in + " / " + c.events_out;
    const last = series.in[series.in.length - 1];
    $("events-rate").textContent = last ? fmt(last.v, 1) + " events/s in" : "";

    lineChart($("chart-throughput"), [{ name: "in", points: series.in },
      { name: "out", points: series.out }], false);
    const reasons = Object.keys(series.dlq).sort();
    lineChart($("chart-dlq"), reasons.length ? reasons.map((r) => ({ name: r, points: series.dlq[r] }))
      : [{ name: "none", points: series.in.map((p) => ({ t: p.t, v: 0 })) }], false);
    $("chart-quality-title").textContent = "Served quality (hit@" + k + ", MRR@" + k + ")";
    lineChart($("chart-quality"), [{ name: "hit@" + k, points: series.hit },
      { name: "MRR@" + k, points: series.mrr }], false);
    lineChart($("chart-freshness"), [{ name: "age", points: series.age }], true);
    renderVersions(s);
    renderLag(s);
    renderExperiment(s);
  }

  // -- talking to the scorer ------------------------------------------------------------
  function askToken(message) {
    $("console").hidden = true;
    $("token-form").hidden = false;
    $("sign-out").hidden = true;
    $("token-error").textContent = message || "";
    $("token-input").focus();
  }

  async function poll() {
    clearTimeout(timer);
    try {
      // The first poll gets the scorer's last hour of samples, each later one the new ones.
      const since = lastSample ? "?since=" + lastSample.t : "";
      const response = await fetch("/console/state" + since,
        { headers: headers(), cache: "no-store" });
      if (response.status === 401) {
        token = "";
        sessionStorage.removeItem(TOKEN_KEY);
        askToken("That token was not accepted.");
        return;
      }
      if (!response.ok) throw new Error("HTTP " + response.status);
      const s = await response.json();
      $("token-form").hidden = true;
      $("console").hidden = false;
      $("sign-out").hidden = !token;
      k = s.k;
      for (const p of s.history || []) addSample(p);
      render(s);
    } catch (err) {
      badge("badge-status", "unreachable", "bad");
      $("updated").textContent = String(err.message || err);
    }
    timer = setTimeout(poll, POLL_MS);
  }

  async function act(action, body, question) {
    if (!window.confirm(question)) return;
    const result = $("action-result");
    result.textContent = action + "…";
    result.className = "";
    try {
      const response = await fetch("/models/" + action, {
        method: "POST",
        headers: headers({ "Content-Type": "application/json" }),
        body: JSON.stringify(body),
      });
      const answer = await response.json();
      if (response.ok) {
        result.textContent = action + " done: serving v" + answer.current +
          (answer.pinned ? " (pinned)" : " (following the trainer)");
        result.className = "ok";
      } else {
        result.textContent = action + " refused (" + response.status + "): " + answer.error;
        result.className = "bad";
      }
    } catch (err) {
      result.textContent = action + " failed: " + (err.message || err);
      result.className = "bad";
    }
    poll();
  }

  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    token = $("token-input").value.trim();
    $("token-input").value = "";
    sessionStorage.setItem(TOKEN_KEY, token);
    poll();
  });
  $("sign-out").addEventListener("click", () => {
    token = "";
    sessionStorage.removeItem(TOKEN_KEY);
    clearTimeout(timer);
    askToken("");
  });
  $("rollback").addEventListener("click", () => act("rollback", {},
    "Roll back to the newest version older than the one served, and pin it?"));
  $("follow").addEventListener("click", () => act("follow", {},
    "Unpin, and serve the trainer's newest version and each new one?"));

  // A link may carry the token: /console#token=<token> (the fragment never reaches a
  // server or its logs). It is used like a typed one, and taken out of the address bar
  // and the history at once.
  function tokenFromAddress() {
    const fragment = new URLSearchParams(window.location.hash.slice(1));
    const given = fragment.get("token");
    if (given === null) return;
    fragment.delete("token");
    const rest = fragment.toString();
    const url = window.location.pathname + window.location.search + (rest ? "#" + rest : "");
    history.replaceState(history.state, "", url);
    if (given.trim()) {
      token = given.trim();
      sessionStorage.setItem(TOKEN_KEY, token);
    }
  }

  tokenFromAddress();
  if (needsToken && !token) askToken("");
  else poll();
})();
