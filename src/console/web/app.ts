/**
 * The console page. Bundled at build time (scripts/build-console.mjs) with
 * uPlot and Arrow JS; reads the console API of src/console/server.ts with the
 * session cookie. Every text from the pipeline (workload paths, process names,
 * reasons, answers) goes in through textContent, never as markup.
 */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import './app.css';
import { tableFromIPC } from 'apache-arrow';

type Child = Node | string | number | null | undefined | false;

function h(tag: string, attrs: Record<string, string> = {}, ...children: Child[]): HTMLElement {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'object' ? c : document.createTextNode(String(c)));
  }
  return el;
}

const fmt = new Intl.NumberFormat('en', { maximumFractionDigits: 1 });
function num(n: number): string {
  return fmt.format(n);
}
function bytes(n: number): string {
  if (n >= 1 << 20) return `${num(n / (1 << 20))} MiB/s`;
  if (n >= 1 << 10) return `${num(n / (1 << 10))} KiB/s`;
  return `${num(n)} B/s`;
}
function time(iso: string | number): string {
  return new Date(iso).toLocaleTimeString('en-GB', { hour12: false });
}

async function api<T>(path: string, init?: RequestInit): Promise<T> {
  const r = await fetch(path, {
    credentials: 'same-origin',
    ...init,
    headers: { ...(init?.body ? { 'content-type': 'application/json' } : {}), ...init?.headers },
  });
  if (!r.ok) {
    let msg = `${r.status} ${r.statusText}`;
    try {
      const j = (await r.json()) as { error?: string };
      if (j.error) msg = j.error;
    } catch {
      /* not JSON */
    }
    throw new Error(msg);
  }
  return (await r.json()) as T;
}

const $ = (id: string): HTMLElement => document.getElementById(id)!;
const conn = $('conn');

// The node filter: every view shows one node, or all (kept in the address: ?node=…).
const nodeSelect = $('node-filter') as HTMLSelectElement;
let nodeFilter = new URLSearchParams(location.search).get('node') ?? '';
const knownNodes = new Set<string>();
function noteNodes(names: Iterable<string>): void {
  let added = false;
  for (const n of names)
    if (n && !knownNodes.has(n)) {
      knownNodes.add(n);
      added = true;
    }
  if (nodeFilter && !knownNodes.has(nodeFilter)) {
    knownNodes.add(nodeFilter);
    added = true;
  }
  if (!added) return;
  nodeSelect.replaceChildren(
    h('option', { value: '' }, 'all'),
    ...[...knownNodes].sort().map((n) => h('option', { value: n }, n)),
  );
  nodeSelect.value = nodeFilter;
}
const shown = (node: string): boolean => nodeFilter === '' || node === nodeFilter;
nodeSelect.addEventListener('change', () => {
  nodeFilter = nodeSelect.value;
  const u = new URL(location.href);
  if (nodeFilter) u.searchParams.set('node', nodeFilter);
  else u.searchParams.delete('node');
  history.replaceState(null, '', u);
  show();
});

// ---------------------------------------------------------------- views ---

const VIEWS = ['now', 'timeline', 'feedback', 'ask', 'thresholds'] as const;
type View = (typeof VIEWS)[number];
let current: View = 'now';

function show(): void {
  const v = location.hash.slice(1) as View;
  current = VIEWS.includes(v) ? v : 'now';
  for (const name of VIEWS) {
    $(`view-${name}`).classList.toggle('active', name === current);
    document
      .querySelector(`nav a[data-view="${name}"]`)!
      .classList.toggle('active', name === current);
  }
  document.body.dataset.view = current;
  if (current === 'now') renderNow(lastNow);
  if (current === 'timeline') void refreshTimeline();
  if (current === 'feedback') void refreshFeedback();
  if (current === 'thresholds') void refreshThresholds();
}
window.addEventListener('hashchange', show);

// ------------------------------------------------------------------ now ---

interface NowProbe {
  probe: string;
  enabled: boolean;
  attached: boolean;
  generation: number;
  events_per_second: number;
  bytes_per_second: number | null;
  drops: Record<string, number>;
  sample_n: number;
  effective_sample_n: number | null;
  overload_n: number | null;
  focus_count: number;
  filters: string[];
}
interface NowNode {
  node: string;
  source: 'local' | 'report';
  at: string;
  events_per_second: number;
  bytes_per_second: number;
  kafka_connected: boolean | null;
  events_dropped: number | null;
  probes: NowProbe[];
}

let lastNow: NowNode[] = [];
function renderNow(all: NowNode[]): void {
  lastNow = all;
  noteNodes(all.map((n) => n.node));
  const nodes = all.filter((n) => shown(n.node));
  const root = $('view-now');
  root.replaceChildren();
  if (nodes.length === 0) root.append(h('p', { class: 'muted' }, 'no node reports yet'));
  for (const n of nodes) {
    const drops = (p: NowProbe): string => {
      const d = Object.entries(p.drops).filter(([, v]) => v > 0);
      return d.length ? d.map(([k, v]) => `${k} ${v}`).join(', ') : '0';
    };
    root.append(
      h(
        'div',
        { class: 'node', 'data-node': n.node },
        h(
          'h2',
          { class: 'node-head' },
          h('span', { class: 'n' }, n.node),
          h('span', { 'data-field': 'node-eps' }, `${num(n.events_per_second)} events/s`),
          h('span', { 'data-field': 'node-bps' }, `${bytes(n.bytes_per_second)} to Kafka`),
          h(
            'span',
            { class: n.kafka_connected === false ? 'bad' : 'muted' },
            n.kafka_connected === null
              ? `report ${time(n.at)}`
              : n.kafka_connected
                ? 'kafka up'
                : 'kafka DOWN',
          ),
          n.events_dropped
            ? h('span', { class: 'bad' }, `${n.events_dropped} dropped before Kafka`)
            : null,
        ),
        h(
          'table',
          {},
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              ...[
                'probe',
                'state',
                'gen',
                'events/s',
                'bytes/s',
                'drops by reason',
                'sampling',
                'filters in force',
              ].map((t) => h('th', {}, t)),
            ),
          ),
          h(
            'tbody',
            {},
            ...n.probes.map((p) =>
              h(
                'tr',
                { 'data-probe': p.probe },
                h('td', {}, p.probe),
                h('td', {}, p.enabled ? (p.attached ? 'on' : 'on (detached)') : 'off'),
                h('td', { class: 'num', 'data-field': 'generation' }, p.generation),
                h('td', { class: 'num', 'data-field': 'eps' }, num(p.events_per_second)),
                h(
                  'td',
                  { class: 'num', 'data-field': 'bps' },
                  p.bytes_per_second === null ? '-' : bytes(p.bytes_per_second),
                ),
                h('td', { 'data-field': 'drops' }, drops(p)),
                h(
                  'td',
                  { 'data-field': 'sampling' },
                  p.sample_n <= 1 ? 'every event' : `1 in ${p.sample_n}`,
                  p.effective_sample_n !== null && p.effective_sample_n !== p.sample_n
                    ? ` (in force 1 in ${p.effective_sample_n}, overload ×${p.overload_n})`
                    : '',
                ),
                h(
                  'td',
                  { 'data-field': 'filters' },
                  p.filters.length ? p.filters.join('; ') : 'none',
                ),
              ),
            ),
          ),
        ),
      ),
    );
  }
}

function liveNow(): void {
  const es = new EventSource('/v1/now/stream');
  es.addEventListener('now', (e) => {
    conn.textContent = `live ${time(Date.now())}`;
    conn.className = 'conn live';
    renderNow((JSON.parse((e as MessageEvent<string>).data) as { nodes: NowNode[] }).nodes);
  });
  es.onerror = () => {
    conn.textContent = 'disconnected; retrying';
    conn.className = 'conn down';
  };
}

// ------------------------------------------------------------- timeline ---

interface AnomalyView {
  id: string;
  node: string;
  workload: string;
  probe: string;
  metric: string;
  window_start: string;
  window_end: string;
  observed: number;
  baseline: number;
  severity: string;
}
interface ActionView {
  id: string;
  at: string;
  action: string;
  origin: string;
  probe: string;
  workload: string | null;
  nodes: string[];
  states: Record<string, string>;
  reverted: Array<{ node: string; at: string; reason: string }>;
  reason: string;
}

const charts: uPlot[] = [];
let timelineBusy = false;

/** Per workload: events/s and tcp bytes/s per window, from the feature rows (Arrow IPC). */
async function featureSeries(since: number): Promise<{
  xs: number[];
  workloads: string[];
  eps: Array<Array<number | null>>;
  bps: Array<Array<number | null>>;
}> {
  const q = nodeFilter ? `&node=${encodeURIComponent(nodeFilter)}` : '';
  const r = await fetch(`/v1/features?since=${since}${q}`, { credentials: 'same-origin' });
  if (!r.ok) throw new Error(`features: ${r.status} ${await r.text()}`);
  const table = tableFromIPC(new Uint8Array(await r.arrayBuffer()));
  const winS = Number(table.schema.metadata.get('tracefeed.window_seconds') ?? '1') || 1;
  const col = (name: string) => table.getChild(name);
  const ws = col('window_start');
  const node = col('node');
  const wl = col('workload');
  const eps = col('events_per_second');
  const sent = col('tcp_bytes_sent');
  const recv = col('tcp_bytes_received');
  const per = new Map<string, Map<number, { e: number; b: number }>>();
  const xsSet = new Set<number>();
  const totals = new Map<string, number>();
  for (let i = 0; i < table.numRows; i++) {
    const t = Math.round(Number(ws?.get(i)) / 1000); // seconds
    if (t * 1000 < since) continue;
    const key = `${String(node?.get(i))} ${String(wl?.get(i))}`;
    let m = per.get(key);
    if (!m) per.set(key, (m = new Map()));
    const cell = m.get(t) ?? { e: 0, b: 0 };
    cell.e += Number(eps?.get(i) ?? 0);
    cell.b += (Number(sent?.get(i) ?? 0) + Number(recv?.get(i) ?? 0)) / winS;
    m.set(t, cell);
    xsSet.add(t);
    totals.set(key, (totals.get(key) ?? 0) + Number(eps?.get(i) ?? 0));
  }
  const xs = [...xsSet].sort((a, b) => a - b);
  const workloads = [...totals.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 8)
    .map(([k]) => k);
  return {
    xs,
    workloads,
    eps: workloads.map((w) => xs.map((x) => per.get(w)?.get(x)?.e ?? null)),
    bps: workloads.map((w) => xs.map((x) => per.get(w)?.get(x)?.b ?? null)),
  };
}

const PALETTE = [
  '#2458c6',
  '#2f855a',
  '#b7791f',
  '#805ad5',
  '#d53f8c',
  '#319795',
  '#718096',
  '#dd6b20',
];
const ACTION_COLOR: Record<string, string> = {
  tighten: '#2458c6',
  loosen: '#2f855a',
  revert: '#718096',
  budget: '#b7791f',
};

function markerPlugin(
  marks: () => Array<{ t: number; color: string; label: string }>,
): uPlot.Plugin {
  return {
    hooks: {
      draw: (u: uPlot) => {
        const ctx = u.ctx;
        ctx.save();
        ctx.font = `${11 * devicePixelRatio}px system-ui`;
        for (const m of marks()) {
          const x = u.valToPos(m.t, 'x', true);
          if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
          ctx.strokeStyle = m.color;
          ctx.fillStyle = m.color;
          ctx.lineWidth = 1.5 * devicePixelRatio;
          ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
          ctx.beginPath();
          ctx.moveTo(x, u.bbox.top);
          ctx.lineTo(x, u.bbox.top + u.bbox.height);
          ctx.stroke();
          ctx.fillText(m.label, x + 3 * devicePixelRatio, u.bbox.top + 12 * devicePixelRatio);
        }
        ctx.restore();
      },
    },
  };
}

/** The kind a timeline action is drawn as: tighten, loosen, budget (a loosening for the node's budget), or its own action. */
function actionKind(a: ActionView): string {
  if (/ over budget: /.test(a.reason)) return 'budget';
  return a.action;
}

async function refreshTimeline(): Promise<void> {
  if (timelineBusy) return;
  timelineBusy = true;
  const root = $('view-timeline');
  try {
    const since = Date.now() - 3600_000;
    const [series, all] = await Promise.all([
      featureSeries(since),
      api<{ anomalies: AnomalyView[]; actions: ActionView[] }>(`/v1/timeline?since=${since}`),
    ]);
    noteNodes([...all.anomalies.map((a) => a.node), ...all.actions.flatMap((a) => a.nodes)]);
    const tl = {
      anomalies: all.anomalies.filter((a) => shown(a.node)),
      actions: all.actions.filter((a) => nodeFilter === '' || a.nodes.includes(nodeFilter)),
    };
    const marks = [
      ...tl.anomalies.map((a) => ({
        t: Date.parse(a.window_start) / 1000,
        color: '#c0392b',
        label: `⚠ ${a.metric}`,
      })),
      ...tl.actions.map((a) => ({
        t: Date.parse(a.at) / 1000,
        color: ACTION_COLOR[actionKind(a)] ?? '#2458c6',
        label: `${actionKind(a)} ${a.probe}`,
      })),
      ...tl.actions.flatMap((a) =>
        a.reverted.map((r) => ({
          t: Date.parse(r.at) / 1000,
          color: ACTION_COLOR.revert!,
          label: `revert ${a.probe}`,
        })),
      ),
    ];
    for (const c of charts.splice(0)) c.destroy();
    root.replaceChildren(
      h('h2', {}, 'Events/s per workload, last hour'),
      h('div', { class: 'chart', id: 'chart-eps' }),
      h('h2', {}, 'TCP bytes/s per workload, last hour'),
      h('div', { class: 'chart', id: 'chart-bps' }),
      h(
        'p',
        { class: 'legend-note' },
        'Dashed lines: anomalies (red) and feedback actions (tighten blue, loosen green, revert grey, budget amber). Top 8 workloads by events.',
      ),
    );
    const width = Math.max(600, root.clientWidth - 20);
    const mk = (
      id: string,
      data: Array<Array<number | null>>,
      unit: (n: number) => string,
    ): void => {
      if (series.xs.length === 0) {
        $(id).append(h('p', { class: 'muted' }, 'no feature windows yet'));
        return;
      }
      const opts: uPlot.Options = {
        width,
        height: 220,
        series: [
          {},
          ...series.workloads.map((w, i) => ({
            label: w,
            stroke: PALETTE[i % PALETTE.length]!,
            width: 1.5,
            spanGaps: false,
            value: (_u: uPlot, v: number | null) => (v === null ? '-' : unit(v)),
          })),
        ],
        axes: [{}, { values: (_u: uPlot, vs: number[]) => vs.map(unit), size: 80 }],
        plugins: [markerPlugin(() => marks)],
      };
      charts.push(new uPlot(opts, [series.xs, ...data] as uPlot.AlignedData, $(id)));
    };
    mk('chart-eps', series.eps, num);
    mk('chart-bps', series.bps, bytes);
    const rows = [
      ...tl.anomalies.map((a) => ({
        t: Date.parse(a.window_start),
        el: h(
          'tr',
          { 'data-kind': 'anomaly', 'data-workload': a.workload, 'data-metric': a.metric },
          h('td', {}, time(a.window_start)),
          h('td', { class: 'kind-anomaly' }, `anomaly (${a.severity})`),
          h('td', {}, `${a.node} ${a.workload}`),
          h('td', {}, `${a.probe} ${a.metric}: ${num(a.observed)} (baseline ${num(a.baseline)})`),
        ),
      })),
      ...tl.actions.map((a) => ({
        t: Date.parse(a.at),
        el: h(
          'tr',
          {
            'data-kind': 'action',
            'data-action': actionKind(a),
            'data-request': a.id,
            'data-workload': a.workload ?? '',
          },
          h('td', {}, time(a.at)),
          h('td', { class: 'kind-action' }, `${actionKind(a)} ${a.probe} (${a.origin})`),
          h('td', {}, `${a.nodes.join(', ')} ${a.workload ?? ''}`),
          h(
            'td',
            {},
            ...Object.entries(a.states).map(([n, s]) =>
              h('span', { class: `tag ${s}` }, `${n}: ${s}`),
            ),
            a.reason,
          ),
        ),
      })),
      ...tl.actions.flatMap((a) =>
        a.reverted
          .filter((r) => shown(r.node))
          .map((r) => ({
            t: Date.parse(r.at),
            el: h(
              'tr',
              {
                'data-kind': 'action',
                'data-action': 'revert',
                'data-request': a.id,
                'data-workload': a.workload ?? '',
              },
              h('td', {}, time(r.at)),
              h('td', { class: 'kind-action' }, `revert ${a.probe}`),
              h('td', {}, `${r.node} ${a.workload ?? ''}`),
              h('td', {}, `${actionKind(a)} ${a.id} taken back: ${r.reason}`),
            ),
          })),
      ),
    ].sort((x, y) => y.t - x.t);
    root.append(
      h('h2', {}, 'Anomalies and feedback actions'),
      rows.length
        ? h(
            'table',
            { class: 'markers' },
            h(
              'thead',
              {},
              h('tr', {}, ...['at', 'what', 'where', 'detail'].map((t) => h('th', {}, t))),
            ),
            h('tbody', {}, ...rows.map((r) => r.el)),
          )
        : h('p', { class: 'muted' }, 'none in the last hour'),
    );
  } catch (err) {
    root.replaceChildren(h('div', { class: 'error-box' }, `timeline: ${(err as Error).message}`));
  } finally {
    timelineBusy = false;
  }
}

// ------------------------------------------------------------- feedback ---

interface RequestRow {
  id: string;
  submitted_at: string;
  origin: string;
  action: string;
  probe: string;
  workload: string | null;
  reason: string;
  decisions: Array<{ node: string; outcome: string; reason: string }>;
  status: Record<string, { state: string; reason?: string }>;
  awaiting_approval: boolean;
  applied: boolean;
}

async function decide(id: string, what: 'approve' | 'reject' | 'revert'): Promise<void> {
  const msg = $('feedback-msg');
  try {
    await api(`/v1/feedback/${encodeURIComponent(id)}/${what}`, { method: 'POST', body: '{}' });
    msg.className = 'muted';
    msg.textContent = `${id}: ${what} sent`;
  } catch (err) {
    msg.className = 'bad';
    msg.textContent = `${id}: ${what} failed: ${(err as Error).message}`;
  }
  await refreshFeedback();
}

async function refreshFeedback(): Promise<void> {
  const root = $('view-feedback');
  try {
    const r = await api<{ controller: boolean; requests: RequestRow[] }>('/v1/feedback');
    noteNodes(r.requests.flatMap((q) => Object.keys(q.status)));
    r.requests = r.requests.filter(
      (q) => nodeFilter === '' || q.decisions.some((d) => d.node === nodeFilter || d.node === '*'),
    );
    const msg =
      document.getElementById('feedback-msg') ?? h('p', { id: 'feedback-msg', class: 'muted' });
    root.replaceChildren(
      h('h2', {}, 'Feedback requests'),
      msg,
      r.controller ? '' : h('p', { class: 'bad' }, 'the feedback controller is not running'),
      h(
        'table',
        {},
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ...[
              'submitted',
              'id',
              'origin',
              'action',
              'workload',
              'decision per node',
              'state',
              'reason',
              '',
            ].map((t) => h('th', {}, t)),
          ),
        ),
        h(
          'tbody',
          {},
          ...r.requests.map((q) => {
            const btn = (what: 'approve' | 'reject' | 'revert', primary = false): HTMLElement => {
              const b = h(
                'button',
                { 'data-act': what, ...(primary ? { class: 'primary' } : {}) },
                what,
              );
              b.addEventListener('click', () => {
                (b as HTMLButtonElement).disabled = true;
                void decide(q.id, what);
              });
              return b;
            };
            return h(
              'tr',
              { 'data-request': q.id },
              h('td', {}, time(q.submitted_at)),
              h('td', {}, q.id),
              h('td', {}, q.origin),
              h('td', {}, `${q.action} ${q.probe}`),
              h('td', {}, q.workload ?? '(node)'),
              h(
                'td',
                {},
                ...q.decisions.map((d) =>
                  h('div', {}, h('b', {}, `${d.node}: ${d.outcome}`), ` ${d.reason}`),
                ),
              ),
              h(
                'td',
                { 'data-field': 'state' },
                ...Object.entries(q.status).map(([n, s]) =>
                  h('span', { class: `tag ${s.state}` }, `${n}: ${s.state}`),
                ),
              ),
              h('td', {}, q.reason),
              h(
                'td',
                {},
                q.awaiting_approval ? btn('approve', true) : null,
                q.awaiting_approval ? btn('reject') : null,
                q.applied ? btn('revert') : null,
              ),
            );
          }),
        ),
      ),
    );
  } catch (err) {
    root.replaceChildren(h('div', { class: 'error-box' }, `feedback: ${(err as Error).message}`));
  }
}

// ------------------------------------------------------------------ ask ---

interface Citation {
  tool: string;
  series?: string;
  metric?: string;
  window_start?: string;
  value?: number | string;
  ref?: string;
}

function buildAsk(): void {
  const root = $('view-ask');
  const q = h('textarea', {
    id: 'ask-q',
    placeholder: 'Ask about the pipeline, e.g. which workload fails to connect?',
  }) as HTMLTextAreaElement;
  const go = h('button', { id: 'ask-go', class: 'primary' }, 'Ask') as HTMLButtonElement;
  const answer = h('div', { id: 'ask-answer', class: 'answer' });
  const cites = h('ol', { id: 'ask-citations' });
  const meta = h('p', { id: 'ask-meta', class: 'muted' });
  root.replaceChildren(
    h('h2', {}, 'Ask the agent'),
    q,
    h('p', {}, go),
    answer,
    meta,
    h('h2', {}, 'Citations'),
    cites,
  );
  let conversation: string | undefined;
  go.addEventListener('click', () => {
    const question = q.value.trim();
    if (!question) return;
    go.disabled = true;
    answer.textContent = '';
    answer.classList.remove('bad');
    cites.replaceChildren();
    meta.textContent = 'asking…';
    void (async () => {
      try {
        const r = await fetch('/v1/ask', {
          method: 'POST',
          credentials: 'same-origin',
          headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
          body: JSON.stringify({
            question,
            ...(conversation ? { conversation_id: conversation } : {}),
          }),
        });
        if (!r.ok || !r.body) throw new Error(`${r.status} ${await r.text()}`);
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let i: number;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const ev = /^event: (.*)$/m.exec(block)?.[1];
            const data = /^data: (.*)$/m.exec(block)?.[1];
            if (!ev || data === undefined) continue;
            const d = JSON.parse(data) as Record<string, unknown>;
            if (ev === 'token') answer.textContent += String(d.text);
            else if (ev === 'error') {
              answer.classList.add('bad');
              answer.textContent = `error: ${String(d.error)}${d.hint ? ` (fix: ${String(d.hint)})` : ''}`;
            } else if (ev === 'result') {
              conversation = String(d.conversation_id);
              answer.textContent = String(d.answer);
              const cs = (d.citations as Citation[]) ?? [];
              cites.replaceChildren(
                ...cs.map((c) =>
                  h(
                    'li',
                    {},
                    [
                      c.tool,
                      c.series ?? c.metric,
                      c.window_start ? `@${c.window_start}` : '',
                      c.value !== undefined ? `= ${c.value}` : '',
                      c.ref ?? '',
                    ]
                      .filter(Boolean)
                      .join(' '),
                  ),
                ),
              );
              meta.textContent = `${String(d.mode)}${d.model ? ` (${String(d.model)})` : ''}, ${String(d.duration_ms)} ms${d.notice ? ` — ${String(d.notice)}` : ''}`;
            }
          }
        }
        if (meta.textContent === 'asking…') meta.textContent = '';
      } catch (err) {
        answer.classList.add('bad');
        answer.textContent = `error: ${(err as Error).message}`;
        meta.textContent = '';
      } finally {
        go.disabled = false;
      }
    })();
  });
}

// ----------------------------------------------------------- thresholds ---

async function refreshThresholds(): Promise<void> {
  const root = $('view-thresholds');
  try {
    const r = await api<{
      controller: boolean;
      status: null | {
        path: string | null;
        loaded_at?: string;
        reloads?: number;
        last_error?: { at: string; message: string } | string | null;
        thresholds: unknown;
      };
    }>('/v1/thresholds');
    const s = r.status;
    root.replaceChildren(
      h('h2', {}, 'Thresholds in force (read-only)'),
      !s
        ? h('p', { class: 'bad' }, 'no controller has published its thresholds')
        : h(
            'div',
            {},
            h('p', {}, 'file: ', h('code', { id: 'th-path' }, s.path ?? '(built-in defaults)')),
            h('p', { class: 'muted' }, `loaded ${s.loaded_at ?? '?'}, ${s.reloads ?? 0} reloads`),
            s.last_error
              ? h(
                  'div',
                  { class: 'error-box', id: 'th-error' },
                  typeof s.last_error === 'string'
                    ? `last validation error (the previous file stays in force): ${s.last_error}`
                    : `last validation error, ${time(s.last_error.at)} (the previous file stays in force): ${s.last_error.message}`,
                )
              : h('p', { id: 'th-error', class: 'muted' }, 'no validation error'),
            h('pre', { id: 'th-body' }, JSON.stringify(s.thresholds, null, 2)),
          ),
    );
  } catch (err) {
    root.replaceChildren(h('div', { class: 'error-box' }, `thresholds: ${(err as Error).message}`));
  }
}

// ---------------------------------------------------------------- start ---

buildAsk();
show();
liveNow();
setInterval(() => {
  if (current === 'timeline') void refreshTimeline();
  else if (current === 'feedback') void refreshFeedback();
  else if (current === 'thresholds') void refreshThresholds();
}, 3000);
