// thrift serve's dashboard: polls GET /metrics every REFRESH_MS with the key the page was
// opened with, and draws the figures of `thrift stats` (the same numbers: each figure keeps
// the exact one in data-value). No framework, nothing loaded from elsewhere; every text
// from the cache (questions above all) goes in with textContent, never as markup.
"use strict";

(function () {
  const REFRESH_MS = 2000;
  const TIMEOUT_MS = 10000; // a request that hangs this long counts as unreachable
  const KEY_STORE = "thrift.key"; // sessionStorage: this tab only, gone when it closes
  const WINDOW_STORE = "thrift.window";
  const SVG = "http://www.w3.org/2000/svg";
  const TIMELINE_SLOTS = 60; // stats.timeline()'s points: now at the right, as thrift top draws it
  const HISTOGRAM_LABELS = { 0: "<1", 1: "1", 2: "2", 3: "5", 4: "10", 5: "20", 6: "50", 7: "100", 8: "200", 9: "500", 10: "1s+" };

  const $ = (id) => document.getElementById(id);
  const byTest = (name) => document.querySelector(`[data-testid="${name}"]`);

  let timer = null;
  let inFlight = false;
  let lastGood = null; // Date of the last successful refresh
  let failingSince = null;
  let drawn = null; // what the page shows now, to skip redrawing the same (a selection survives)

  // -- the key --------------------------------------------------------------------------

  // `thrift serve` opens /#key=KEY: the fragment never reaches the server or its logs.
  // Keep the key for this tab and take it out of the address bar (and so of the history).
  function takeKeyFromFragment() {
    const hash = location.hash;
    if (!hash.startsWith("#key=")) return;
    let key = hash.slice(5);
    try {
      key = decodeURIComponent(key);
    } catch (_) {
      // not percent-encoded: the key as written
    }
    if (key) sessionStorage.setItem(KEY_STORE, key);
    history.replaceState(null, "", location.pathname + location.search);
  }

  // A link with another key opened in this tab changes only the fragment: no reload.
  window.addEventListener("hashchange", () => {
    if (!location.hash.startsWith("#key=")) return;
    takeKeyFromFragment();
    refresh();
  });

  function currentKey() {
    return sessionStorage.getItem(KEY_STORE);
  }

  function askForKey(refused) {
    stop();
    $("dashboard").hidden = true;
    $("key-form").hidden = false;
    const message = $("key-message");
    if (refused) {
      message.textContent = "The server refused that key (401): it is not a key of this server, or it was revoked. Paste the key thrift serve printed.";
      message.classList.add("refused");
    }
    setStatus(refused ? "key refused" : "no key", refused);
    $("key-input").focus();
  }

  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("key-input").value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY_STORE, key);
    $("key-input").value = "";
    $("key-form").hidden = true;
    refresh();
  });

  // -- polling --------------------------------------------------------------------------

  function stop() {
    if (timer !== null) clearTimeout(timer);
    timer = null;
  }

  function schedule() {
    stop();
    if (!document.hidden) timer = setTimeout(refresh, REFRESH_MS);
  }

  async function refresh() {
    stop();
    const key = currentKey();
    if (!key) {
      askForKey(false);
      return;
    }
    if (inFlight) return;
    inFlight = true;
    const since = $("window").value;
    const query = since ? "?since=" + encodeURIComponent(since) : "";
    const abort = new AbortController();
    const deadline = setTimeout(() => abort.abort(), TIMEOUT_MS);
    let response = null;
    try {
      response = await fetch("/metrics" + query, {
        headers: { "X-API-Key": key, Accept: "application/json" },
        cache: "no-store",
        signal: abort.signal,
      });
    } catch (_) {
      response = null; // refused, reset or timed out: the server is not there
    } finally {
      clearTimeout(deadline);
      inFlight = false;
    }
    if (response !== null && response.status === 401) {
      sessionStorage.removeItem(KEY_STORE);
      askForKey(true);
      return;
    }
    let data = null;
    if (response !== null && response.ok) {
      try {
        data = await response.json();
      } catch (_) {
        data = null;
      }
    }
    if (data === null) {
      unreachable(response);
    } else {
      failingSince = null;
      lastGood = new Date();
      document.body.classList.remove("stale");
      $("key-form").hidden = true;
      $("dashboard").hidden = false;
      render(data);
      $("dashboard").dataset.window = since || "all"; // the window of the figures drawn
      setStatus(`updated ${clock(lastGood)} · every ${REFRESH_MS / 1000} s`, false);
    }
    schedule();
  }

  function unreachable(response) {
    failingSince = failingSince || new Date();
    document.body.classList.add("stale");
    const why = response === null ? "server unreachable" : `server error ${response.status}`;
    const shown = lastGood ? ` · last update ${clock(lastGood)}` : "";
    setStatus(`${why} since ${clock(failingSince)}${shown} · retrying every ${REFRESH_MS / 1000} s`, true);
    byTest("status").dataset.state = "unreachable";
  }

  function setStatus(text, bad) {
    const status = byTest("status");
    status.textContent = text;
    status.classList.toggle("error", bad);
    status.dataset.state = bad ? "error" : "ok";
  }

  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      stop();
      if (currentKey() && !$("dashboard").hidden) setStatus(`paused while the tab is hidden · last update ${lastGood ? clock(lastGood) : "-"}`, false);
    } else if (currentKey()) {
      refresh();
    }
  });

  $("window").addEventListener("change", () => {
    sessionStorage.setItem(WINDOW_STORE, $("window").value);
    refresh();
  });

  // -- formatting (as thrift top writes them: thrift_cli/tui/widgets.py) ------------------

  function compact(n) {
    const a = Math.abs(n);
    if (a < 100000) return Math.round(n).toLocaleString("en-US");
    if (a < 1000000) return (n / 1000).toLocaleString("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 }) + "k";
    if (a < 100000000) return (n / 1000000).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 }) + "M";
    return Math.round(n / 1000000).toLocaleString("en-US") + "M";
  }

  function fixed(n, digits) {
    return n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }

  function money(usd) {
    if (usd < 10) return "$" + fixed(usd, 4);
    if (usd < 10000) return "$" + fixed(usd, 2);
    return "$" + fixed(usd, 0);
  }

  function duration(seconds) {
    const a = Math.abs(seconds);
    if (a < 120) return fixed(seconds, 1) + " s";
    if (a < 7200) return fixed(seconds / 60, 1) + " min";
    return fixed(seconds / 3600, 1) + " h";
  }

  function percent(rate) {
    return fixed(rate * 100, 1) + "%";
  }

  function ms(value) {
    if (value === null || value === undefined) return "-";
    return value < 10 ? fixed(value, 2) : fixed(value, 0);
  }

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  function clock(date) {
    return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  }

  // A unix time: the clock today, else the date and the minute.
  function when(unix) {
    if (unix === null || unix === undefined) return "-";
    const date = new Date(unix * 1000);
    const today = new Date();
    if (date.toDateString() === today.toDateString()) return clock(date);
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}`;
  }

  function plural(n, word) {
    return `${n.toLocaleString("en-US")} ${word}${n === 1 ? "" : "s"}`;
  }

  // -- drawing --------------------------------------------------------------------------

  // Put `text` and the number it shows into the figure `name`.
  function figure(name, text, value) {
    const node = byTest(name);
    node.textContent = text;
    if (value !== undefined) node.dataset.value = String(value);
    return node;
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function svg(tag, attributes) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, String(value));
    return node;
  }

  function titled(node, text) {
    const title = svg("title");
    title.textContent = text;
    node.appendChild(title);
    return node;
  }

  function render(data) {
    const s = data.stats;
    const same = JSON.stringify({ ...data, stats: { ...s, generated_at: null } });
    if (same === drawn) return;
    drawn = same;
    const empty = s.lookups === 0 && s.entries.total === 0 && !$("window").value;
    byTest("empty").hidden = !empty;
    headline(s);
    tiers(s);
    timeline(data.timeline);
    latency(s);
    topQuestions(s.top_questions);
    feed(data.recent);
  }

  function headline(s) {
    figure("hit-rate", percent(s.hit_rate), s.hit_rate);
    figure("hits", plural(s.hits, "hit"), s.hits);
    figure("lookups", compact(s.lookups), s.lookups);
    figure("misses-note", `${s.misses.total.toLocaleString("en-US")} ${s.misses.total === 1 ? "miss" : "misses"}`, s.misses.total);
    const saved = s.time_saved;
    const estimated = saved.estimated_hits + saved.unknown_hits;
    figure("time-saved", duration(saved.seconds), saved.seconds);
    byTest("time-estimated").hidden = !estimated;
    figure("time-note", estimated ? `${fixed(saved.estimated_seconds, 1)} s of it estimated` : "measured", saved.estimated_seconds);
    figure("tokens-saved", "~" + compact(s.tokens_saved), s.tokens_saved);
    figure("money-saved", money(s.money_saved.usd), s.money_saved.usd);
    const namespaces = Object.keys(s.money_saved.by_namespace);
    const prices = new Set(namespaces.map((ns) => s.money_saved.by_namespace[ns].price_per_1k));
    figure("money-note", prices.size === 1 ? `at $${[...prices][0]} / 1k tokens` : prices.size ? "by namespace price" : "");
    figure("entries", compact(s.entries.total), s.entries.total);
    const held = Object.keys(s.entries.by_namespace).length;
    const expired = s.entries.expired ? ` · ${s.entries.expired.toLocaleString("en-US")} expired` : "";
    figure("entries-note", `in ${plural(held, "namespace")}${expired}`, held);
  }

  function tiers(s) {
    const rows = [
      ["exact", "exact-hits", s.hits_by_tier.exact],
      ["semantic", "semantic-hits", s.hits_by_tier.semantic],
    ];
    // The shared tiers that served hits: shown when they did (counted in exact/semantic too).
    for (const source of ["redis", "remote"]) {
      const n = s.hits_by_source[source] || 0;
      if (n) rows.push([source, `${source}-hits`, n]);
    }
    rows.push(["miss", "misses", s.misses.total]);
    const top = Math.max(1, ...rows.map((row) => row[2]));
    const box = $("tiers");
    box.replaceChildren();
    for (const [label, id, n] of rows) {
      const row = element("div", "row");
      row.appendChild(element("span", "label", label === "miss" ? "misses" : label));
      const bar = svg("svg", { viewBox: "0 0 100 10", preserveAspectRatio: "none", "aria-hidden": "true" });
      bar.appendChild(svg("rect", { class: "track", x: 0, y: 0, width: 100, height: 10, rx: 2 }));
      if (n) bar.appendChild(svg("rect", { class: label, x: 0, y: 0, width: Math.max(1, (n / top) * 100), height: 10, rx: 2 }));
      row.appendChild(bar);
      const count = element("span", "count", compact(n));
      count.dataset.testid = id;
      count.dataset.value = String(n);
      row.appendChild(count);
      box.appendChild(row);
    }
    const sub = element("p", "sub");
    const sources = Object.entries(s.hits_by_source).filter(([, n]) => n).map(([name, n]) => `${compact(n)} ${name}`);
    sub.textContent = sources.length ? `served from: ${sources.join(", ")}` : "";
    const vetoed = s.misses.vetoed ? ` · ${compact(s.misses.vetoed)} misses vetoed by a guard` : "";
    sub.textContent += vetoed;
    box.appendChild(sub);
  }

  function stepName(seconds) {
    const names = { 60: "minute", 3600: "hour", 86400: "day", 604800: "week" };
    if (names[seconds]) return names[seconds];
    return seconds < 3600 ? `${seconds / 60} min` : `${seconds / 3600} h`;
  }

  function timeline(t) {
    const step = t.step_seconds;
    const lookups = t.lookups.slice(-TIMELINE_SLOTS);
    const hits = t.hits.slice(-TIMELINE_SLOTS);
    const first = t.start + (t.lookups.length - lookups.length) * step;
    $("timeline-title").textContent = `hit rate per ${stepName(step)}`;
    const width = 400, height = 150, top = 8, bottom = 136;
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "hit rate over time" });
    for (const [fraction, label] of [[1, "100%"], [0.5, "50%"], [0, "0%"]]) {
      const y = bottom - fraction * (bottom - top);
      chart.appendChild(svg("line", { class: "grid", x1: 34, x2: width, y1: y, y2: y }));
      const text = svg("text", { x: 0, y: y + 4 });
      text.textContent = label;
      chart.appendChild(text);
    }
    const slot = (width - 36) / TIMELINE_SLOTS;
    const offset = TIMELINE_SLOTS - lookups.length;
    let lastRate = null;
    lookups.forEach((n, i) => {
      const x = 36 + (offset + i) * slot;
      const at = new Date((first + i * step) * 1000);
      if (n === 0) {
        chart.appendChild(svg("rect", { class: "none", x: x + slot * 0.35, y: bottom - 2, width: Math.max(slot * 0.3, 1), height: 2 }));
        return;
      }
      const rate = hits[i] / n;
      lastRate = rate;
      const group = svg("g");
      group.appendChild(svg("rect", { class: "slot", x: x + 1, y: top, width: Math.max(slot - 2, 1), height: bottom - top }));
      const h = Math.max(rate * (bottom - top), rate > 0 ? 2 : 0);
      group.appendChild(svg("rect", { class: "rate", x: x + 1, y: bottom - h, width: Math.max(slot - 2, 1), height: h }));
      titled(group, `${clock(at)}: ${plural(n, "lookup")}, ${plural(hits[i], "hit")} (${percent(rate)})`);
      chart.appendChild(group);
    });
    $("timeline").replaceChildren(chart);
    $("timeline").dataset.buckets = String(lookups.length);
    $("timeline-from").textContent = lookups.length ? when(first) : "";
    $("timeline-now").textContent = lastRate === null ? "now" : `now ${percent(lastRate)}`;
  }

  function latency(s) {
    const h = s.latency_histogram;
    const series = ["exact", "semantic", "miss_overhead"];
    const bins = h.exact.length;
    const totals = Array.from({ length: bins }, (_, i) => series.reduce((sum, name) => sum + h[name][i], 0));
    const top = Math.max(1, ...totals);
    const width = 440, height = 150, bottom = 128, room = 116;
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "latency histogram" });
    chart.appendChild(svg("line", { class: "grid", x1: 0, x2: width, y1: bottom + 0.5, y2: bottom + 0.5 }));
    const slot = width / bins;
    for (let i = 0; i < bins; i++) {
      const x = i * slot + 3;
      let y = bottom;
      for (const name of series) {
        const n = h[name][i];
        if (!n) continue;
        const bar = Math.max((n / top) * room, 1.5);
        y -= bar;
        chart.appendChild(titled(svg("rect", { class: name === "miss_overhead" ? "miss" : name, x, y, width: slot - 6, height: bar }), `${plural(n, name.replace("_", " ") + " lookup")}`));
      }
      if (totals[i]) {
        const count = svg("text", { x: x + (slot - 6) / 2, y: y - 3, "text-anchor": "middle" });
        count.textContent = compact(totals[i]);
        chart.appendChild(count);
      }
      const low = i === 0 ? 0 : h.edges_ms[i - 1];
      const high = i < h.edges_ms.length ? h.edges_ms[i] : null;
      const label = svg("text", { x: x + (slot - 6) / 2, y: height - 4, "text-anchor": "middle" });
      label.textContent = HISTOGRAM_LABELS[i] !== undefined ? HISTOGRAM_LABELS[i] : String(low);
      chart.appendChild(titled(label, high === null ? `${low} ms and over` : `${low} to ${high} ms`));
    }
    $("latency").replaceChildren(chart);
    for (const tier of ["exact", "semantic"]) {
      const row = s.latency_ms[tier];
      figure(`p50-${tier}`, row.p50 === null ? "-" : ms(row.p50) + " ms", row.p50 === null ? "" : row.p50);
      figure(`p99-${tier}`, row.p99 === null ? "-" : ms(row.p99) + " ms", row.p99 === null ? "" : row.p99);
      figure(`n-${tier}`, compact(row.n), row.n);
    }
  }

  function emptyRow(body, columns, text) {
    const row = element("tr", "empty");
    const cell = element("td", "", text);
    cell.colSpan = columns;
    row.appendChild(cell);
    body.appendChild(row);
  }

  function topQuestions(rows) {
    const body = $("top");
    body.replaceChildren();
    if (!rows.length) emptyRow(body, 3, "No hits yet: a question asked twice (or a paraphrase of it) shows here.");
    for (const q of rows) {
      const row = element("tr");
      row.dataset.entryId = q.entry_id;
      const question = element("td", "q", q.question);
      question.dataset.testid = "top-question";
      question.title = q.namespace;
      row.appendChild(question);
      const hits = element("td", "num", compact(q.hits));
      hits.dataset.testid = "top-hits";
      hits.dataset.value = String(q.hits);
      row.appendChild(hits);
      const last = element("td", "", when(q.last_hit_at));
      last.dataset.testid = "top-last-hit";
      last.dataset.value = String(q.last_hit_at);
      row.appendChild(last);
      body.appendChild(row);
    }
  }

  function feed(rows) {
    const body = $("feed");
    body.replaceChildren();
    if (!rows.length) emptyRow(body, 5, "No lookups in this window.");
    for (const r of rows) {
      const row = element("tr");
      row.dataset.testid = "lookup";
      row.dataset.id = String(r.id);
      const at = element("td", "", when(r.at));
      at.dataset.value = String(r.at);
      row.appendChild(at);
      const tier = r.tier === "miss" ? (r.outcome ? `miss (${r.outcome})` : "miss") : r.source && r.source !== "local" ? `${r.tier} · ${r.source}` : r.tier;
      const tierCell = element("td", "tier " + r.tier, tier);
      tierCell.dataset.value = r.tier;
      row.appendChild(tierCell);
      const similarity = element("td", "num", r.similarity === null ? "-" : fixed(r.similarity, 3));
      similarity.dataset.value = r.similarity === null ? "" : String(r.similarity);
      row.appendChild(similarity);
      const took = element("td", "num", ms(r.latency_ms) + " ms");
      took.dataset.value = String(r.latency_ms);
      row.appendChild(took);
      const question = element("td", "q");
      question.title = r.namespace;
      const asked = element("span", "asked", r.question === null ? "-" : r.question);
      asked.dataset.testid = "lookup-question";
      question.appendChild(asked);
      if (r.matched && r.matched !== r.question) question.appendChild(element("span", "matched", "≈ " + r.matched));
      row.appendChild(question);
      body.appendChild(row);
    }
  }

  // -- start ----------------------------------------------------------------------------

  takeKeyFromFragment();
  const chosen = sessionStorage.getItem(WINDOW_STORE);
  if (chosen !== null && [...$("window").options].some((o) => o.value === chosen)) $("window").value = chosen;
  refresh();
})();
