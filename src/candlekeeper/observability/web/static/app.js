// candlekeeper's page: the streams table and a candlestick chart, kept live over
// Server-Sent Events. Plain script, no build step. Prices arrive as exact decimal text;
// they are converted to numbers here, for drawing only.
(function () {
  "use strict";
  const params = new URLSearchParams(location.search);
  const token = params.get("token");
  const state = { key: params.get("stream"), bars: 0, lastTime: null, events: 0,
                  connected: false, opens: 0 };
  window.candlekeeper = state;  // read by the browser test (and handy in a console)

  function url(path, query) {
    const q = new URLSearchParams(query || {});
    if (token) q.set("token", token);
    const s = q.toString();
    return s ? path + "?" + s : path;
  }
  const keyOf = (r) => r.venue + ":" + r.symbol + ":" + r.interval;
  const sec = (ms) => Math.floor(ms / 1000);
  function fmtLag(ms) { return ms == null ? "" : (ms / 1000).toFixed(2) + " s"; }
  function fmtOffset(ms) { return ms == null ? "" : ms.toFixed(0) + " ms"; }

  const chart = LightweightCharts.createChart(document.getElementById("chart"), {
    autoSize: true,
    layout: { background: { color: "#0f1419" }, textColor: "#d8dee4" },
    grid: { vertLines: { color: "#1c242c" }, horzLines: { color: "#1c242c" } },
    timeScale: { timeVisible: true, secondsVisible: false },
  });
  const candles = chart.addCandlestickSeries({ priceFormat: { type: "price", precision: 4,
                                                               minMove: 0.0001 } });
  const volume = chart.addHistogramSeries({ priceScaleId: "vol", priceFormat: { type: "volume" } });
  chart.priceScale("vol").applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
  chart.priceScale("right").applyOptions({ scaleMargins: { top: 0.08, bottom: 0.25 } });

  const bar = (c) => ({ time: sec(c.t), open: +c.o, high: +c.h, low: +c.l, close: +c.c });
  const vol = (c) => ({ time: sec(c.t), value: +c.v,
                        color: +c.c >= +c.o ? "rgba(38,166,154,0.5)" : "rgba(239,83,80,0.5)" });

  function draw(c) {
    const t = sec(c.t);
    if (state.lastTime !== null && t < state.lastTime) return;  // never move backwards
    candles.update(bar(c));
    volume.update(vol(c));
    if (state.lastTime === null || t > state.lastTime) state.bars += 1;
    state.lastTime = t;
    if (c.x) state.lastClosed = t;
  }

  async function loadChart() {
    if (!state.key) return;
    const [venue, symbol, interval] = state.key.split(":");
    document.getElementById("chart-title").textContent = venue + " " + symbol + " " + interval;
    const resp = await fetch(url("/api/candles", { venue, symbol, interval, n: 300 }));
    if (!resp.ok) return;
    const body = await resp.json();
    const all = body.candles.concat(body.forming ? [body.forming] : []);
    candles.setData(all.map(bar));
    volume.setData(all.map(vol));
    state.bars = all.length;
    state.lastTime = all.length ? sec(all[all.length - 1].t) : null;
    state.lastClosed = body.candles.length ? sec(body.candles[body.candles.length - 1].t) : null;
    // a short history fills the width; a long one shows its newest part
    if (all.length < 120) chart.timeScale().fitContent(); else chart.timeScale().scrollToRealTime();
  }

  const tbody = document.querySelector("#streams tbody");
  const pick = document.getElementById("pick");
  function renderTable(table) {
    if (!table.streams) return;
    const badge = document.getElementById("status");
    badge.textContent = table.status;
    badge.className = "badge " + table.status;
    const rows = table.streams;
    if (!state.key && rows.length) { state.key = keyOf(rows[0]); connect(); loadChart(); }
    if (pick.options.length !== rows.length) {
      pick.innerHTML = "";
      for (const r of rows) pick.add(new Option(keyOf(r).replaceAll(":", " "), keyOf(r)));
    }
    pick.value = state.key;
    const html = [];
    for (const r of rows) {
      const k = keyOf(r);
      html.push("<tr data-key=\"" + k + "\"" + (k === state.key ? " class=\"picked\"" : "") + ">"
        + "<td>" + r.venue + "</td><td>" + r.symbol + "</td><td>" + r.interval + "</td>"
        + "<td class=\"" + (r.state === "live" ? "state-live" : "state-other") + "\">"
        + r.state + "</td><td>" + (r.last_close || "") + "</td><td>" + fmtLag(r.lag_ms)
        + "</td><td>" + r.reconnects + "</td><td>" + r.backfilled + "</td><td>"
        + fmtOffset(r.clock_offset_ms) + "</td></tr>");
    }
    tbody.innerHTML = html.join("");
    state.rows = rows.length;
  }
  function choose(key) {
    if (!key || key === state.key) return;
    state.key = key;
    history.replaceState(null, "", url("/", { stream: key }));
    connect();
    loadChart();
  }
  tbody.addEventListener("click", (e) => {
    const tr = e.target.closest("tr");
    if (tr) choose(tr.dataset.key);
  });
  pick.addEventListener("change", () => choose(pick.value));

  let source = null;
  function setConn(up) {
    state.connected = up;
    const el = document.getElementById("conn");
    el.textContent = up ? "live" : "reconnecting";
    el.className = "badge " + (up ? "live" : "offline");
  }
  function connect() {
    if (source) source.close();
    const q = state.key ? { stream: state.key } : {};
    source = new EventSource(url("/api/events", q));
    source.onopen = () => {
      state.opens += 1;
      setConn(true);
      if (state.opens > 1) loadChart();  // a reconnect: fill what was missed while away
    };
    source.onerror = () => {  // EventSource retries by itself, unless the answer was fatal
      setConn(false);
      if (source.readyState === EventSource.CLOSED) setTimeout(connect, 3000);
    };
    source.addEventListener("streams", (e) => { state.events += 1; renderTable(JSON.parse(e.data)); });
    const mine = (c) => keyOf(c) === state.key;
    source.addEventListener("closed", (e) => { const c = JSON.parse(e.data); if (mine(c)) draw(c); });
    source.addEventListener("forming", (e) => { const c = JSON.parse(e.data); if (mine(c)) draw(c); });
    source.addEventListener("resync", () => loadChart());
  }
  connect();
  loadChart();
})();
