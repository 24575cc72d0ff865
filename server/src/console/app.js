// Strata console: a hand-written single-page app (no framework, no build step).
// Served by the binary itself (server/src/console.rs) under a strict
// Content-Security-Policy: no inline script, no innerHTML of data — every
// value reaches the page through textContent or DOM attributes.
'use strict';

(function () {
  // ---------------------------------------------------------------- state --
  const TOKEN_KEY = 'strata.console.token';
  const state = {
    token: localStorage.getItem(TOKEN_KEY) || '',
    // Bumped when the token changes: answers to older requests are dropped.
    generation: 0,
    // Completion lists, fetched with the current token (cleared with it).
    completion: { metrics: null, labels: null, values: new Map() },
    // What the explorer shows (cleared with the token).
    explorer: { expr: '', tab: 'table', range: '1h', end: '', step: '' },
    timer: null,
  };

  // ------------------------------------------------------------ helpers --
  function el(tag, attrs, ...children) {
    const svg = tag.startsWith('svg:');
    const node = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4)) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') node.textContent = String(v);
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      node.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  class Stale extends Error {}

  // Every request carries the token; an answer that arrives after the token
  // changed is thrown away (Stale), so nothing of one token shows under another.
  async function api(path, params, opts) {
    const gen = state.generation;
    const url = new URL(path, window.location.origin);
    for (const [k, v] of params || []) url.searchParams.append(k, v);
    const headers = {};
    if (state.token) headers.Authorization = 'Bearer ' + state.token;
    let resp;
    try {
      resp = await fetch(url, { headers, cache: 'no-store', credentials: 'omit' });
    } catch (e) {
      if (gen !== state.generation) throw new Stale();
      return { ok: false, status: 0, body: null, text: String(e) };
    }
    const text = await resp.text();
    if (gen !== state.generation) throw new Stale();
    let body = null;
    if (!(opts && opts.text)) {
      try { body = JSON.parse(text); } catch (_) { body = null; }
    }
    return { ok: resp.ok, status: resp.status, body, text };
  }

  // The message of a failed answer: Prometheus's errorType and error, or the admin API's error.
  function failure(r) {
    if (r.status === 0) return 'request failed: ' + r.text;
    if (r.body && r.body.error) {
      return (r.body.errorType ? r.body.errorType + ': ' : '') + r.body.error + ' (HTTP ' + r.status + ')';
    }
    return 'HTTP ' + r.status + ': ' + (r.text || '').slice(0, 500);
  }

  function messages(body) {
    const out = [];
    for (const w of (body && body.warnings) || []) out.push(el('div', { class: 'warning', text: 'warning: ' + w }));
    for (const i of (body && body.infos) || []) out.push(el('div', { class: 'info', text: 'info: ' + i }));
    return out;
  }

  function fmtNum(v) {
    if (typeof v === 'string') v = Number(v);
    if (!Number.isFinite(v)) return String(v);
    if (Number.isInteger(v)) return v.toLocaleString('en-US');
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e9)) return v.toExponential(3);
    return String(Math.round(v * 1e4) / 1e4);
  }

  function fmtBytes(v) {
    v = Number(v);
    if (!Number.isFinite(v)) return String(v);
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return (i === 0 ? v : v.toFixed(1)) + ' ' + units[i];
  }

  function seriesName(metric) {
    const name = metric.__name__ || '';
    const pairs = Object.entries(metric).filter(([k]) => k !== '__name__').map(([k, v]) => k + '=' + JSON.stringify(v));
    return name + '{' + pairs.join(', ') + '}';
  }

  function table(headers, rows, numeric) {
    const num = new Set(numeric || []);
    return el('table', {},
      el('thead', {}, el('tr', {}, headers.map((h, i) => el('th', { class: num.has(i) ? 'num' : null, text: h })))),
      el('tbody', {}, rows.map((r) => el('tr', {}, r.map((c, i) => {
        if (c instanceof Node) return el('td', { class: num.has(i) ? 'num' : null }, c);
        return el('td', { class: num.has(i) ? 'num' : null, text: c === undefined || c === null ? '—' : c });
      })))));
  }

  function bar(ratio, hot) {
    const inner = el('div');
    inner.style.width = Math.max(0, Math.min(100, ratio * 100)).toFixed(2) + '%';
    return el('div', { class: 'bar' + (hot ? ' hot' : '') }, inner);
  }

  // ------------------------------------------------------------ routing --
  const pages = { explorer: explorerPage, cardinality: cardinalityPage, ingest: ingestPage, storage: storagePage, tenants: tenantsPage };

  function route() {
    const hash = window.location.hash.replace(/^#\/?/, '');
    const [name, query] = hash.split('?');
    const page = pages[name] ? name : 'explorer';
    const params = new URLSearchParams(query || '');
    if (state.timer) { clearInterval(state.timer); state.timer = null; }
    for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.page === page);
    const main = clear(document.getElementById('main'));
    pages[page](main, params).catch((e) => {
      if (e instanceof Stale) return;
      main.appendChild(el('div', { class: 'error', text: String(e && e.stack ? e.stack : e) }));
    });
  }

  function setToken(t) {
    if (t === state.token) return;
    state.token = t;
    if (t) localStorage.setItem(TOKEN_KEY, t); else localStorage.removeItem(TOKEN_KEY);
    // Forget everything fetched or typed under the previous token (an
    // expression in the address too).
    state.generation++;
    const bare = window.location.hash.split('?')[0];
    if (bare !== window.location.hash) history.replaceState(null, '', bare || '#/explorer');
    state.completion = { metrics: null, labels: null, values: new Map() };
    state.explorer = { expr: '', tab: 'table', range: '1h', end: '', step: '' };
    loadBuild();
    route();
  }

  async function loadBuild() {
    const b = document.getElementById('build');
    b.textContent = '';
    try {
      const r = await api('/api/v1/status/buildinfo');
      if (r.ok && r.body && r.body.data) b.textContent = 'v' + (r.body.data.version || '?');
    } catch (e) { if (!(e instanceof Stale)) throw e; }
  }

  // While the node starts (its log replay), /-/ready answers 503 saying what
  // it does: shown above every page, polled each second until ready, then
  // the page is loaded again (queries and writes answer from then on).
  let starting = false;
  async function watchReady() {
    const banner = document.getElementById('starting');
    let r;
    try {
      r = await fetch('/-/ready', { cache: 'no-store', credentials: 'omit' });
    } catch (_) {
      setTimeout(watchReady, 2000);
      return;
    }
    const text = (await r.text()).trim();
    if (r.status === 503) {
      banner.textContent = text + ' Queries and writes are answered once it is ready; the Storage page shows the replay (admin token or open mode).';
      banner.hidden = false;
      starting = true;
      setTimeout(watchReady, 1000);
      return;
    }
    banner.hidden = true;
    if (starting) {
      starting = false;
      loadBuild();
      route();
    }
  }

  // ----------------------------------------------------------- explorer --
  const FUNCTIONS = ['abs', 'absent', 'absent_over_time', 'avg', 'avg_over_time', 'bottomk', 'ceil', 'changes', 'clamp', 'clamp_max',
    'clamp_min', 'count', 'count_over_time', 'count_values', 'day_of_month', 'day_of_week', 'delta', 'deriv', 'exp', 'floor',
    'group', 'histogram_quantile', 'holt_winters', 'hour', 'idelta', 'increase', 'irate', 'label_join', 'label_replace',
    'last_over_time', 'ln', 'log2', 'log10', 'max', 'max_over_time', 'min', 'min_over_time', 'minute', 'month',
    'predict_linear', 'present_over_time', 'quantile', 'quantile_over_time', 'rate', 'resets', 'round', 'scalar', 'sort',
    'sort_desc', 'sqrt', 'stddev', 'stddev_over_time', 'stdvar', 'stdvar_over_time', 'sum', 'sum_over_time', 'time',
    'timestamp', 'topk', 'vector', 'year'];
  const RANGES = { '5m': 300, '1h': 3600, '6h': 21600, '24h': 86400, '7d': 604800 };

  async function completionList(kind, label) {
    const c = state.completion;
    if (kind === 'metric') {
      if (!c.metrics) {
        const r = await api('/api/v1/label/__name__/values');
        c.metrics = r.ok && r.body && Array.isArray(r.body.data) ? r.body.data : [];
      }
      return c.metrics;
    }
    if (kind === 'label') {
      if (!c.labels) {
        const r = await api('/api/v1/labels');
        c.labels = r.ok && r.body && Array.isArray(r.body.data) ? r.body.data.filter((l) => l !== '__name__') : [];
      }
      return c.labels;
    }
    if (!c.values.has(label)) {
      const r = await api('/api/v1/label/' + encodeURIComponent(label) + '/values');
      c.values.set(label, r.ok && r.body && Array.isArray(r.body.data) ? r.body.data : []);
    }
    return c.values.get(label);
  }

  // What to complete at the cursor: a metric or function name, a label name
  // inside braces, or a label value after `label="`.
  function completionContext(text) {
    const value = /([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)$/.exec(text);
    const open = text.lastIndexOf('{');
    const inBraces = open > text.lastIndexOf('}');
    if (inBraces && value) return { kind: 'value', label: value[1], prefix: value[3] };
    const word = /([a-zA-Z_:][a-zA-Z0-9_:]*)$/.exec(text);
    const prefix = word ? word[1] : '';
    // Grouping and matching clauses name labels: sum by (room), on (job).
    if (/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*$/.test(text)) return { kind: 'label', prefix };
    if (inBraces) {
      const tail = text.slice(open + 1);
      if (/(^|,)\s*[a-zA-Z0-9_]*$/.test(tail)) return { kind: 'label', prefix };
      return null;
    }
    if (/\[[^\]]*$/.test(text)) return null; // a range like [5m]
    if (!prefix) return null;
    return { kind: 'metric', prefix };
  }

  function setupCompletion(textarea, list, onRun) {
    let items = [];
    let sel = 0;
    let ctx = null;
    let seq = 0;

    function close() { items = []; clear(list); list.hidden = true; }

    function render() {
      clear(list);
      if (!items.length) { list.hidden = true; return; }
      list.hidden = false;
      items.forEach((it, i) => {
        list.appendChild(el('li', {
          class: i === sel ? 'sel' : null,
          'data-value': it.value,
          onmousedown: (e) => { e.preventDefault(); sel = i; accept(); },
        }, it.value, el('span', { class: 'kind', text: it.kind })));
      });
    }

    function accept() {
      const it = items[sel];
      if (!it || !ctx) return close();
      const pos = textarea.selectionStart;
      const before = textarea.value.slice(0, pos - ctx.prefix.length);
      let insert = it.value;
      if (ctx.kind === 'value') insert = it.value.replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"';
      else if (it.kind === 'function') insert += '(';
      const after = textarea.value.slice(pos);
      textarea.value = before + insert + after;
      const p = before.length + insert.length;
      textarea.setSelectionRange(p, p);
      state.explorer.expr = textarea.value;
      close();
      textarea.focus();
    }

    async function update() {
      const mine = ++seq;
      const text = textarea.value.slice(0, textarea.selectionStart);
      // This call's own context: a newer keystroke may change `ctx` (or
      // clear it) while the label lists load.
      const here = completionContext(text);
      if (!here) { ctx = null; return close(); }
      let found;
      try {
        if (here.kind === 'metric') {
          const metrics = await completionList('metric');
          found = metrics.filter((m) => m.startsWith(here.prefix)).map((m) => ({ value: m, kind: 'metric' }))
            .concat(FUNCTIONS.filter((f) => f.startsWith(here.prefix)).map((f) => ({ value: f, kind: 'function' })));
        } else if (here.kind === 'label') {
          const labels = await completionList('label');
          found = labels.filter((l) => l.startsWith(here.prefix)).map((l) => ({ value: l, kind: 'label' }));
        } else {
          const values = await completionList('value', here.label);
          found = values.filter((v) => v.startsWith(here.prefix)).map((v) => ({ value: v, kind: here.label }));
        }
      } catch (e) {
        if (e instanceof Stale) return;
        throw e;
      }
      if (mine !== seq) return;
      ctx = here;
      items = found.filter((it) => it.value !== here.prefix || here.kind === 'value').slice(0, 50);
      sel = 0;
      render();
    }

    textarea.addEventListener('input', () => { state.explorer.expr = textarea.value; update(); });
    textarea.addEventListener('blur', () => setTimeout(close, 150));
    textarea.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey || (!e.shiftKey && list.hidden))) {
        e.preventDefault(); close(); onRun(); return;
      }
      if (list.hidden) return;
      if (e.key === 'ArrowDown') { e.preventDefault(); sel = (sel + 1) % items.length; render(); }
      else if (e.key === 'ArrowUp') { e.preventDefault(); sel = (sel - 1 + items.length) % items.length; render(); }
      else if (e.key === 'Enter' || e.key === 'Tab') { e.preventDefault(); accept(); }
      else if (e.key === 'Escape') { e.preventDefault(); close(); }
    });
  }

  function endTime() {
    const e = state.explorer.end;
    if (!e) return Date.now() / 1000;
    const t = new Date(e).getTime();
    return Number.isFinite(t) ? t / 1000 : Date.now() / 1000;
  }

  // A step in seconds: `15`, `15s`, `1m`, `2h` (else null: automatic).
  function parseStep(text) {
    const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec((text || '').trim());
    if (!m) return null;
    const v = Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 }[m[2] || 's'];
    return v > 0 ? v : null;
  }

  function autoStep(seconds) {
    // About 250 points, rounded to a whole second.
    return Math.max(1, Math.round(seconds / 250));
  }

  async function explorerPage(main, params) {
    const ex = state.explorer;
    if (params.get('expr') !== null) ex.expr = params.get('expr');
    if (params.get('tab')) ex.tab = params.get('tab') === 'graph' ? 'graph' : 'table';

    const textarea = el('textarea', { id: 'expr', rows: 3, spellcheck: 'false', placeholder: 'PromQL expression, e.g. rate(http_requests_total[5m])  (Enter runs, Shift+Enter for a new line)' });
    textarea.value = ex.expr;
    const list = el('ul', { id: 'completion', hidden: true });
    const result = el('div', { id: 'result' });
    const runBtn = el('button', { id: 'run', class: 'primary', type: 'button', text: 'Execute' });
    const tabTable = el('button', { id: 'tab-table', type: 'button', text: 'Table' });
    const tabGraph = el('button', { id: 'tab-graph', type: 'button', text: 'Graph' });
    const range = el('select', { id: 'range' }, Object.keys(RANGES).map((r) => el('option', { value: r, text: 'last ' + r })));
    range.value = ex.range;
    const end = el('input', { id: 'end', type: 'datetime-local', step: 1, title: 'end time (empty: now)' });
    end.value = ex.end;
    const step = el('input', { id: 'step', type: 'text', size: 6, placeholder: 'auto', title: 'step: 15, 15s, 1m, 1h (empty: about 250 points)' });
    step.value = ex.step;
    const graphOpts = el('span', { class: 'row' }, 'Range', range, 'End', end,
      el('button', { type: 'button', text: 'now', onclick: () => { end.value = ''; ex.end = ''; run(); } }), 'Step', step);
    const timeOpt = el('span', { class: 'row' }, 'Evaluation time', el('span', { class: 'muted', text: '(the graph\'s end time, or now)' }));

    function tabs() {
      tabTable.classList.toggle('active', ex.tab === 'table');
      tabGraph.classList.toggle('active', ex.tab === 'graph');
      graphOpts.hidden = ex.tab !== 'graph';
      timeOpt.hidden = ex.tab !== 'table';
    }
    tabTable.addEventListener('click', () => { ex.tab = 'table'; tabs(); run(); });
    tabGraph.addEventListener('click', () => { ex.tab = 'graph'; tabs(); run(); });
    range.addEventListener('change', () => { ex.range = range.value; run(); });
    end.addEventListener('change', () => { ex.end = end.value; run(); });
    step.addEventListener('change', () => { ex.step = step.value.trim(); run(); });

    async function run() {
      ex.expr = textarea.value;
      clear(result);
      if (!ex.expr.trim()) return;
      result.appendChild(el('div', { class: 'muted', text: 'running…' }));
      try {
        if (ex.tab === 'table') await runInstant(ex.expr, result);
        else await runRange(ex.expr, result);
      } catch (e) {
        if (e instanceof Stale) return;
        clear(result).appendChild(el('div', { class: 'error', text: String(e) }));
      }
    }
    runBtn.addEventListener('click', run);

    main.appendChild(el('h2', { text: 'Explorer' }));
    main.appendChild(el('section', { class: 'card' },
      el('div', { class: 'completion' }, textarea, list),
      el('div', { class: 'row' }, runBtn, el('span', { class: 'tabs' }, tabTable, ' ', tabGraph), timeOpt, graphOpts)));
    main.appendChild(el('section', { class: 'card' }, result));
    tabs();
    setupCompletion(textarea, list, run);
    textarea.focus();
    if (ex.expr) run();
  }

  async function runInstant(expr, out) {
    const params = [['query', expr]];
    if (state.explorer.end) params.push(['time', String(endTime())]);
    const t0 = performance.now();
    const r = await api('/api/v1/query', params);
    clear(out);
    if (!r.ok || !r.body || r.body.status !== 'success') {
      out.appendChild(el('div', { class: 'error', id: 'query-error', text: failure(r) }));
      out.append(...messages(r.body));
      return;
    }
    out.append(...messages(r.body));
    const d = r.body.data;
    const ms = Math.round(performance.now() - t0);
    let rows;
    if (d.resultType === 'vector') {
      rows = d.result.map((s) => [seriesName(s.metric), s.value[1]]);
    } else if (d.resultType === 'matrix') {
      rows = d.result.map((s) => [seriesName(s.metric), s.values.map((v) => v[1] + ' @' + v[0]).join('\n')]);
    } else if (d.resultType === 'scalar' || d.resultType === 'string') {
      rows = [['(' + d.resultType + ')', d.result[1]]];
    } else {
      rows = [];
    }
    out.appendChild(el('div', { class: 'muted', text: rows.length + ' result' + (rows.length === 1 ? '' : 's') + ' (' + d.resultType + ', ' + ms + ' ms)' }));
    const t = table(['Series', 'Value'], rows, [1]);
    t.id = 'result-table';
    for (const td of t.querySelectorAll('tbody td:first-child')) td.className = 'labels';
    if (!rows.length) t.querySelector('tbody').appendChild(el('tr', {}, el('td', { colspan: 2, class: 'muted', text: 'no data' })));
    out.appendChild(t);
  }

  const COLORS = ['#1f6feb', '#d9480f', '#2b8a3e', '#ae3ec9', '#e8590c', '#0c8599', '#c2255c', '#5c940d', '#364fc7', '#862e9c'];

  async function runRange(expr, out) {
    const ex = state.explorer;
    const span = RANGES[ex.range] || 3600;
    const end = endTime();
    const start = end - span;
    const stepS = parseStep(ex.step) || autoStep(span);
    const r = await api('/api/v1/query_range', [['query', expr], ['start', String(start)], ['end', String(end)], ['step', String(stepS)]]);
    clear(out);
    if (!r.ok || !r.body || r.body.status !== 'success') {
      out.appendChild(el('div', { class: 'error', id: 'query-error', text: failure(r) }));
      out.append(...messages(r.body));
      return;
    }
    out.append(...messages(r.body));
    const d = r.body.data;
    if (d.resultType !== 'matrix') {
      out.appendChild(el('div', { class: 'error', text: 'a range query answered ' + d.resultType + ', not a matrix' }));
      return;
    }
    out.appendChild(el('div', { class: 'muted', text: d.result.length + ' series, step ' + stepS + 's, ' + new Date(start * 1000).toISOString() + ' – ' + new Date(end * 1000).toISOString() }));
    out.appendChild(lineChart(d.result, start, end, stepS));
  }

  function niceTicks(min, max, n) {
    if (min === max) { min -= 1; max += 1; }
    const raw = (max - min) / n;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
    const lo = Math.floor(min / step) * step;
    const hi = Math.ceil(max / step) * step;
    const ticks = [];
    for (let v = lo; v <= hi + step / 2; v += step) ticks.push(Number(v.toPrecision(12)));
    return { lo, hi, ticks };
  }

  function timeLabel(t, span) {
    const d = new Date(t * 1000);
    const p = (x) => String(x).padStart(2, '0');
    const hm = p(d.getHours()) + ':' + p(d.getMinutes());
    if (span <= 600) return hm + ':' + p(d.getSeconds());
    if (span <= 86400) return hm;
    return p(d.getMonth() + 1) + '-' + p(d.getDate()) + ' ' + hm;
  }

  // A small SVG line chart: one path per series, gaps where a step has no sample.
  function lineChart(series, start, end, step) {
    const W = 1000, H = 320, L = 64, R = 12, T = 10, B = 26;
    let min = Infinity, max = -Infinity;
    for (const s of series) for (const [, v] of s.values) {
      const x = Number(v);
      if (Number.isFinite(x)) { if (x < min) min = x; if (x > max) max = x; }
    }
    const svg = el('svg:svg', { class: 'graph', id: 'graph', viewBox: '0 0 ' + W + ' ' + H, role: 'img' });
    const wrap = el('div', {}, svg);
    if (!Number.isFinite(min)) {
      wrap.appendChild(el('div', { class: 'muted', text: 'no data in this range' }));
      return wrap;
    }
    const y = niceTicks(min, max, 5);
    const sx = (t) => L + ((t - start) / (end - start || 1)) * (W - L - R);
    const sy = (v) => T + (1 - (v - y.lo) / (y.hi - y.lo || 1)) * (H - T - B);
    for (const v of y.ticks) {
      svg.appendChild(el('svg:line', { class: 'gridline', x1: L, x2: W - R, y1: sy(v), y2: sy(v) }));
      svg.appendChild(el('svg:text', { x: L - 6, y: sy(v) + 4, 'text-anchor': 'end', text: fmtNum(v) }));
    }
    const span = end - start;
    for (let i = 0; i <= 6; i++) {
      const t = start + (span * i) / 6;
      svg.appendChild(el('svg:line', { class: 'gridline', x1: sx(t), x2: sx(t), y1: T, y2: H - B }));
      svg.appendChild(el('svg:text', { x: sx(t), y: H - 8, 'text-anchor': i === 0 ? 'start' : i === 6 ? 'end' : 'middle', text: timeLabel(t, span) }));
    }
    svg.appendChild(el('svg:line', { class: 'axis', x1: L, x2: L, y1: T, y2: H - B }));
    svg.appendChild(el('svg:line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B }));
    const legend = el('div', { class: 'legend' });
    series.forEach((s, i) => {
      const color = COLORS[i % COLORS.length];
      let d = '';
      let prev = null;
      for (const [t, v] of s.values) {
        const x = Number(v);
        if (!Number.isFinite(x)) { prev = null; continue; }
        const joined = prev !== null && t - prev <= step * 1.5;
        d += (joined ? 'L' : 'M') + sx(t).toFixed(1) + ' ' + sy(x).toFixed(1);
        prev = t;
      }
      // A lone point still shows: a zero-length segment with round caps.
      const lone = s.values.length === 1;
      const path = el('svg:path', { class: 'series', d: lone ? d + 'l0.01 0' : d, stroke: color, 'stroke-linecap': 'round', 'stroke-width': lone ? 6 : null, 'data-series': seriesName(s.metric) });
      path.appendChild(el('svg:title', { text: seriesName(s.metric) }));
      svg.appendChild(path);
      const sw = el('span', { class: 'swatch' });
      sw.style.background = color;
      const last = s.values.length ? s.values[s.values.length - 1][1] : '';
      legend.appendChild(el('div', {}, sw, seriesName(s.metric) + '  ' + last));
    });
    wrap.appendChild(legend);
    return wrap;
  }

  // -------------------------------------------------------- cardinality --
  async function cardinalityPage(main, params) {
    const topN = el('input', { id: 'topn', type: 'number', min: 1, max: 1000, value: params.get('topN') || 10 });
    const match = el('input', { id: 'match', type: 'text', size: 30, placeholder: 'match[] selector, e.g. {job="x"}', value: params.get('match') || '' });
    const focus = el('input', { id: 'focus', type: 'text', size: 14, placeholder: 'focus label', value: params.get('focusLabel') || '' });
    const date = el('input', { id: 'date', type: 'date', value: params.get('date') || '' });
    const out = el('div', { id: 'cardinality' });
    async function load() {
      const q = [['topN', topN.value || '10']];
      if (match.value.trim()) q.push(['match[]', match.value.trim()]);
      if (focus.value.trim()) q.push(['focusLabel', focus.value.trim()]);
      if (date.value) q.push(['date', date.value]);
      clear(out).appendChild(el('div', { class: 'muted', text: 'loading…' }));
      const r = await api('/api/v1/status/tsdb', q);
      clear(out);
      if (!r.ok || !r.body || r.body.status !== 'success') {
        out.appendChild(el('div', { class: 'error', text: failure(r) }));
        return;
      }
      out.append(...messages(r.body));
      renderCardinality(out, r.body.data);
    }
    const go = el('button', { id: 'card-run', class: 'primary', type: 'button', text: 'Show', onclick: () => load().catch(ignoreStale) });
    for (const i of [topN, match, focus]) i.addEventListener('keydown', (e) => { if (e.key === 'Enter') load().catch(ignoreStale); });
    main.appendChild(el('h2', { text: 'Cardinality' }));
    main.appendChild(el('section', { class: 'card' }, el('div', { class: 'row' }, 'Top', topN, 'match[]', match, 'focus label', focus, 'date', date, go)));
    main.appendChild(out);
    await load();
  }

  function ignoreStale(e) { if (!(e instanceof Stale)) throw e; }

  function renderCardinality(out, d) {
    const a = d.activeSeries || {};
    const head = d.headStats || {};
    const ratio = Number(a.ratio) || 0;
    out.appendChild(el('section', { class: 'card', id: 'active-series' },
      el('h3', { text: 'Active series' }),
      el('div', { class: 'row' }, bar(ratio, ratio >= 0.8),
        el('span', { text: fmtNum(a.used || 0) + ' of ' + (a.limit ? fmtNum(a.limit) : 'unlimited') + ' (max_active_series), ' + (ratio * 100).toFixed(2) + ' %' })),
      el('div', { class: 'muted', text: 'total series ' + fmtNum(d.totalSeries || 0) + ', label=value pairs ' + fmtNum(d.totalLabelValuePairs || 0) +
        (head.minTime ? ', samples from ' + new Date(head.minTime).toISOString() + ' to ' + new Date(head.maxTime).toISOString() : '') })));
    const total = Number(d.totalSeries) || 0;
    function list(title, id, entries, valueTitle, link, fmt) {
      const rows = (entries || []).map((e) => {
        const name = link ? el('a', { href: link(e.name), text: e.name }) : e.name;
        const share = total && valueTitle === 'Series' ? el('span', { class: 'share' }, bar(e.value / total), (100 * e.value / total).toFixed(1) + ' %') : '';
        return [name, fmt ? fmt(e.value) : fmtNum(e.value), share];
      });
      const t = table(['Name', valueTitle, valueTitle === 'Series' ? 'Share of total' : ''], rows, [1]);
      t.id = id;
      if (!rows.length) t.querySelector('tbody').appendChild(el('tr', {}, el('td', { colspan: 3, class: 'muted', text: 'none' })));
      return el('section', { class: 'card' }, el('h3', { text: title }), t);
    }
    const explore = (q) => '#/explorer?tab=table&expr=' + encodeURIComponent(q);
    const grid = el('div', { class: 'grid' },
      list('Series count by metric name', 'by-metric', d.seriesCountByMetricName, 'Series', (n) => explore('count by (__name__) ({__name__=' + JSON.stringify(n) + '})')),
      list('Label value count by label name', 'by-label', d.labelValueCountByLabelName, 'Values'),
      list('Series count by label=value pair', 'by-pair', d.seriesCountByLabelValuePair, 'Series'),
      list('Memory of values by label name', 'by-memory', d.memoryInBytesByLabelName, 'Bytes', null, fmtBytes));
    if (d.seriesCountByFocusLabelValue && d.seriesCountByFocusLabelValue.length) {
      grid.appendChild(list('Series count by focus label value', 'by-focus', d.seriesCountByFocusLabelValue, 'Series'));
    }
    out.appendChild(grid);
  }

  // ------------------------------------------------------------- ingest --
  function autoRefresh(load) {
    state.timer = setInterval(() => load().catch(ignoreStale), 5000);
  }

  async function ingestPage(main) {
    const out = el('div', { id: 'ingest' });
    main.appendChild(el('h2', { text: 'Ingest' }));
    main.appendChild(el('p', { class: 'muted', text: 'The ingest log: per-partition offsets, Kafka lag and apply rate. Needs the admin token; refreshed every 5 s.' }));
    main.appendChild(out);
    async function load() {
      const r = await api('/api/v1/status/ingest');
      clear(out);
      if (!r.ok || !r.body || r.body.status !== 'success') {
        out.appendChild(el('div', { class: 'error', text: failure(r) }));
        return;
      }
      const d = r.body.data;
      const flushed = d.hot_flushed_offsets || {};
      out.appendChild(el('section', { class: 'card' }, el('h3', { text: 'Log' }), table(['', ''], [
        ['kind', d.kind], ['partitions', d.partitions], ['caught up', String(d.caught_up)],
        ['peers', (d.peers || []).join(', ') || 'none'], ['peer errors', d.peer_errors],
        d.local ? ['local log on disk', fmtBytes(d.local.disk_bytes)] : null,
      ].filter(Boolean))));
      if (d.local) {
        out.appendChild(el('section', { class: 'card' }, el('h3', { text: 'Local log partitions' }),
          table(['Partition', 'First offset', 'Next offset', 'Records', 'Flushed to hot segments'],
            d.local.partitions.map((p) => [p.partition, fmtNum(p.first_offset), fmtNum(p.next_offset), fmtNum(p.next_offset - p.first_offset), flushed[p.partition] === undefined ? '—' : fmtNum(flushed[p.partition])]),
            [0, 1, 2, 3, 4])));
      }
      if (d.kafka) {
        const k = d.kafka;
        out.appendChild(el('section', { class: 'card' }, el('h3', { text: 'Kafka' }), table(['', ''], [
          ['topic', k.topic], ['group', k.group || '—'], ['produced records', fmtNum(k.produced_records)],
          ['produced bytes', fmtBytes(k.produced_bytes)], ['delivery failures', fmtNum(k.delivery_failures)],
          ['apply errors', fmtNum(k.apply_errors)], ['rebalances', fmtNum(k.rebalances)],
        ])));
        out.appendChild(el('section', { class: 'card' }, el('h3', { text: 'Kafka partitions' }),
          table(['Partition', 'Assigned', 'Next offset', 'High watermark', 'Lag', 'Committed', 'Applied records', 'Applied bytes', 'Apply rate /s'],
            k.partitions.map((p) => [p.partition, p.assigned ? 'yes' : 'no', p.next_offset, p.high_watermark, p.lag, p.committed_offset,
              fmtNum(p.applied_records), fmtBytes(p.applied_bytes), fmtNum(p.apply_rate)]),
            [0, 2, 3, 4, 5, 6, 7, 8])));
      }
    }
    await load();
    autoRefresh(load);
  }

  // ------------------------------------------------------------ storage --
  // The Prometheus text exposition: families with their help, type and samples.
  function parseExposition(text) {
    const families = new Map();
    const fam = (name) => {
      if (!families.has(name)) families.set(name, { name, help: '', type: '', samples: [] });
      return families.get(name);
    };
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      let m = /^#\s+(HELP|TYPE)\s+(\S+)\s*(.*)$/.exec(line);
      if (m) { fam(m[2])[m[1] === 'HELP' ? 'help' : 'type'] = m[3]; continue; }
      if (line.startsWith('#')) continue;
      m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
      if (!m) continue;
      const labels = {};
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let lm;
      while ((lm = re.exec(m[3] || '')) !== null) labels[lm[1]] = lm[2].replace(/\\n/g, '\n').replace(/\\(.)/g, '$1');
      let name = m[1];
      // Histogram and summary samples belong to their family.
      for (const suffix of ['_bucket', '_sum', '_count']) {
        const base = name.slice(0, -suffix.length);
        if (name.endsWith(suffix) && families.has(base) && ['histogram', 'summary'].includes(families.get(base).type)) name = base;
      }
      fam(name).samples.push({ name: m[1], labels, value: Number(m[4]) });
    }
    return families;
  }

  function fmtTime(ms) {
    if (ms === null || ms === undefined) return '—';
    return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  }

  function fmtSecs(s) {
    if (s === null || s === undefined) return '—';
    if (s < 90) return s.toFixed(s < 10 ? 1 : 0) + ' s';
    if (s < 5400) return (s / 60).toFixed(1) + ' min';
    return (s / 3600).toFixed(1) + ' h';
  }

  // Long-running work (/api/v1/status/tasks): running tasks with a bar, then the recent ones.
  function tasksCard(r) {
    const card = el('section', { class: 'card', id: 'tasks' }, el('h3', { text: 'Work in progress' }));
    if (!r.ok || !r.body || r.body.status !== 'success') {
      card.appendChild(el('div', { class: 'error', text: failure(r) }));
      return card;
    }
    const d = r.body.data;
    const where = (t) => [t.tenant ? 'tenant ' + t.tenant : null, t.partition === null || t.partition === undefined ? null : 'partition ' + t.partition].filter(Boolean).join(', ') || 'node';
    const progress = (t) => {
      const f = t.total === null || t.total === undefined ? null : (t.total === 0 ? 1 : Math.min(1, t.done / t.total));
      const text = fmtNum(t.done) + ' / ' + (t.total === null || t.total === undefined ? '?' : fmtNum(t.total)) + ' ' + t.unit + (f === null ? '' : ' (' + (100 * f).toFixed(1) + ' %)');
      return el('span', { class: 'share' }, f === null ? '' : bar(f), text);
    };
    const running = table(['Task', 'Where', 'Progress', 'Started', 'Rate', 'ETA'],
      d.running.map((t) => [t.kind, where(t), progress(t), fmtTime(t.started_ms), fmtNum(Math.round(t.rate_per_sec)) + ' ' + t.unit + '/s', fmtSecs(t.eta_secs)]), [4, 5]);
    running.id = 'tasks-running';
    if (!d.running.length) running.querySelector('tbody').appendChild(el('tr', {}, el('td', { colspan: 6, class: 'muted', text: 'nothing running (replay, rebuild, roll and merge tasks show here while they run)' })));
    card.appendChild(running);
    const recent = table(['Task', 'Where', 'Done', 'State', 'Started', 'Took', 'Rate'],
      d.recent.slice(0, 10).map((t) => [t.kind, where(t), fmtNum(t.done) + ' / ' + (t.total === null || t.total === undefined ? '?' : fmtNum(t.total)) + ' ' + t.unit, t.state, fmtTime(t.started_ms), fmtSecs(t.elapsed_secs), fmtNum(Math.round(t.rate_per_sec)) + ' ' + t.unit + '/s']), [5, 6]);
    recent.id = 'tasks-recent';
    if (!d.recent.length) recent.querySelector('tbody').appendChild(el('tr', {}, el('td', { colspan: 7, class: 'muted', text: 'none yet' })));
    card.appendChild(el('h3', { text: 'Recently ended' }));
    card.appendChild(recent);
    if (d.scope !== 'all') card.appendChild(el('div', { class: 'muted', text: "This token's tenant's tasks; node-wide work (log replay, rebuild) shows with the admin token." }));
    return card;
  }

  // The cold tier per tenant (/api/v1/status/cold): watermark, then each table's snapshots, files and bytes.
  function coldCard(r) {
    const card = el('section', { class: 'card', id: 'cold' }, el('h3', { text: 'Cold tier' }));
    if (!r.ok || !r.body || r.body.status !== 'success') {
      card.appendChild(el('div', { class: 'error', text: failure(r) }));
      return card;
    }
    const d = r.body.data;
    if (!d.enabled) {
      card.appendChild(el('div', { class: 'info', text: 'The cold tier is off on this node ([cold] enabled = false).' }));
      return card;
    }
    const rows = [];
    for (const t of d.tenants) {
      for (const tb of t.tables) {
        rows.push([t.tenant, fmtTime(t.watermark_ms), tb.table, tb.exists ? fmtNum(tb.snapshots) : '—', tb.exists ? fmtNum(tb.data_files) : '—',
          tb.exists ? fmtNum(tb.records) : '—', tb.exists ? fmtBytes(tb.bytes) : '—',
          tb.error ? tb.error : (tb.exists ? (tb.complete_from_ms ? 'complete from ' + fmtTime(tb.complete_from_ms) : '') : 'no table yet')]);
      }
    }
    const t = table(['Tenant', 'Watermark (cold below)', 'Table', 'Snapshots', 'Data files', 'Rows', 'Bytes', ''], rows, [3, 4, 5, 6]);
    t.id = 'cold-tables';
    if (!rows.length) t.querySelector('tbody').appendChild(el('tr', {}, el('td', { colspan: 8, class: 'muted', text: 'no cold tables yet' })));
    card.appendChild(t);
    return card;
  }

  async function storagePage(main) {
    const live = el('div', { id: 'storage-live' });
    const out = el('div', { id: 'storage' });
    main.appendChild(el('h2', { text: 'Storage' }));
    main.appendChild(el('p', { class: 'muted', text: 'Work in progress (/api/v1/status/tasks, every 2 s), the cold tier per tenant (/api/v1/status/cold), and the node\'s /metrics: the hot store (strata_hot_*), the cold tier\'s compactor (strata_compactor_*) and tables (strata_cold_*). Refreshed every 5 s.' }));
    main.appendChild(live);
    main.appendChild(out);
    const tasksSlot = el('div');
    const coldSlot = el('div');
    live.appendChild(tasksSlot);
    live.appendChild(coldSlot);
    const groups = [
      ['Hot store', 'strata_hot_'],
      ['Cold tier: compactor', 'strata_compactor_'],
      ['Cold tier: tables', 'strata_cold_'],
      ['Progress', 'strata_progress_'],
    ];
    async function loadTasks() {
      const r = await api('/api/v1/status/tasks');
      clear(tasksSlot).appendChild(tasksCard(r));
    }
    async function load() {
      const [c, r] = await Promise.all([api('/api/v1/status/cold'), api('/metrics', [], { text: true })]);
      clear(coldSlot).appendChild(coldCard(c));
      clear(out);
      if (!r.ok) {
        out.appendChild(el('div', { class: 'error', text: failure(r) }));
        return;
      }
      const families = parseExposition(r.text);
      let shown = 0;
      for (const [title, prefix] of groups) {
        const fams = [...families.values()].filter((f) => f.name.startsWith(prefix) && f.samples.length);
        if (!fams.length) continue;
        shown++;
        const rows = [];
        for (const f of fams) for (const s of f.samples) {
          const labels = Object.entries(s.labels).map(([k, v]) => k + '=' + JSON.stringify(v)).join(', ');
          const bytes = /bytes/.test(s.name);
          rows.push([s.name, labels, bytes ? fmtBytes(s.value) : fmtNum(s.value), f.help]);
        }
        const t = table(['Metric', 'Labels', 'Value', 'Help'], rows, [2]);
        t.id = 'storage-' + prefix.replace(/_$/, '');
        out.appendChild(el('section', { class: 'card' }, el('h3', { text: title }), t));
      }
      if (!shown) out.appendChild(el('div', { class: 'muted', text: 'no storage metrics found' }));
    }
    await Promise.all([loadTasks(), load()]);
    // One timer (route() clears state.timer): the tasks every 2 s, the rest every 6 s.
    let ticks = 0;
    state.timer = setInterval(() => {
      loadTasks().catch(ignoreStale);
      if (++ticks % 3 === 0) load().catch(ignoreStale);
    }, 2000);
  }

  // ------------------------------------------------------------ tenants --
  async function tenantsPage(main) {
    const out = el('div', { id: 'tenants' });
    main.appendChild(el('h2', { text: 'Tenants' }));
    main.appendChild(el('p', { class: 'muted', text: 'The admin API: tenants, their limits and usage. Needs the admin token.' }));
    main.appendChild(out);
    const r = await api('/admin/v1/tenants');
    if (!r.ok || !Array.isArray(r.body)) {
      out.appendChild(el('div', { class: 'error', text: failure(r) }));
      return;
    }
    if (!r.body.length) {
      out.appendChild(el('div', { class: 'muted', text: 'No tenants yet: the node runs in open mode (strata admin tenants create <id>).' }));
      return;
    }
    const usage = await Promise.all(r.body.map((t) => api('/admin/v1/tenants/' + encodeURIComponent(t.id) + '/usage')));
    const rows = r.body.map((t, i) => {
      const u = usage[i].ok && usage[i].body ? usage[i].body : {};
      const ratio = Number(u.active_series_ratio) || 0;
      return [
        t.id, t.display_name || '', t.home_region || '', (t.data_regions || []).join(', '),
        el('span', { class: 'share' }, bar(ratio, ratio >= 0.8), fmtNum(u.active_series || 0) + ' / ' + fmtNum(u.max_active_series || (t.limits || {}).max_active_series || 0)),
        fmtNum(u.samples_accepted || 0), fmtNum(u.write_requests || 0), fmtNum(u.queries || 0),
        fmtBytes(u.hot_bytes || 0), u.cold_bytes === null || u.cold_bytes === undefined ? '—' : fmtBytes(u.cold_bytes),
        Object.entries(u.rejected_by_reason || {}).map(([k, v]) => k + ': ' + v).join(', ') || '—',
      ];
    });
    const t = table(['Tenant', 'Name', 'Home', 'Data regions', 'Active series', 'Samples', 'Writes', 'Queries', 'Hot bytes', 'Cold bytes', 'Rejected'], rows, [5, 6, 7, 8, 9]);
    t.id = 'tenant-table';
    out.appendChild(el('section', { class: 'card' }, el('h3', { text: 'Usage' }), t));
    for (const tenant of r.body) {
      const limits = Object.entries(tenant.limits || {}).map(([k, v]) => [k, typeof v === 'number' ? fmtNum(v) : String(v)]);
      out.appendChild(el('details', { class: 'card' }, el('summary', { text: 'Limits of ' + tenant.id }), table(['Limit', 'Value'], limits, [1])));
    }
  }

  // --------------------------------------------------------------- boot --
  function boot() {
    const input = document.getElementById('token');
    input.value = state.token;
    input.addEventListener('change', () => setToken(input.value.trim()));
    // preventDefault: the Enter must not reach the explorer's editor, focused by the re-render.
    input.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); setToken(input.value.trim()); } });
    document.getElementById('token-clear').addEventListener('click', () => { input.value = ''; setToken(''); });
    // Another tab changed the token: follow it (and forget what was shown).
    window.addEventListener('storage', (e) => {
      if (e.key === TOKEN_KEY) { input.value = e.newValue || ''; setToken(e.newValue || ''); }
    });
    window.addEventListener('hashchange', route);
    loadBuild();
    route();
    watchReady();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
  else boot();
})();
