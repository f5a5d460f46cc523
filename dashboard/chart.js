// The "last hour" chart, drawn as inline SVG: one stacked bar per minute
// (succeeded below, failed on top, left axis) and a line for the mean request
// duration of each minute (right axis). Colours live in style.css.

const HEIGHT = 220;
const MARGIN = { top: 26, right: 56, bottom: 28, left: 44 };

/** Totals over the buckets, for the summary line. */
export function summarize(buckets) {
  let succeeded = 0;
  let failed = 0;
  let durationSum = 0;
  let maxMs = 0;
  for (const b of buckets) {
    succeeded += b.succeeded;
    failed += b.failed;
    durationSum += b.meanDurationMs * (b.succeeded + b.failed);
    maxMs = Math.max(maxMs, b.maxDurationMs);
  }
  const total = succeeded + failed;
  return {
    total,
    succeeded,
    failed,
    successRate: total ? succeeded / total : null,
    meanMs: total ? durationSum / total : null,
    maxMs,
  };
}

/** A round step (1, 2, 5 × 10^k) giving at most `ticks` steps up to `max`. */
function niceStep(max, ticks) {
  const raw = Math.max(max, 1) / ticks;
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * power >= raw) return Math.max(1, m * power);
  return 10 * power;
}

function hhmm(date) {
  return date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', hour12: false });
}

function formatMs(ms) {
  return ms >= 1000 ? `${(ms / 1000).toFixed(ms >= 10_000 ? 0 : 1)} s` : `${Math.round(ms)} ms`;
}

/**
 * Draws `buckets` (oldest first, as `attemptMetrics` returns them) into
 * `svg`, sized to the element's current width so text is never scaled.
 */
export function renderChart(svg, buckets) {
  const ns = svg.namespaceURI; // the SVG namespace, taken from the page's own <svg>
  const el = (tag, attrs = {}, text = null) => {
    const node = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text != null) node.textContent = text;
    return node;
  };

  const width = Math.max(320, Math.round(svg.getBoundingClientRect().width) || 720);
  svg.setAttribute('viewBox', `0 0 ${width} ${HEIGHT}`);
  svg.replaceChildren();

  const plotW = width - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const bottom = MARGIN.top + plotH;
  const n = Math.max(buckets.length, 1);
  const slot = plotW / n;
  const barW = Math.max(1, slot - Math.min(3, slot * 0.25));

  const maxCount = Math.max(0, ...buckets.map((b) => b.succeeded + b.failed));
  const countStep = niceStep(Math.max(maxCount, 4), 4);
  const steps = Math.max(1, Math.ceil(Math.max(maxCount, 4) / countStep));
  const countTop = steps * countStep;
  // The right axis shares the grid lines: same number of steps, round values.
  const maxMean = Math.max(0, ...buckets.map((b) => b.meanDurationMs));
  const msStep = niceStep(maxMean, steps);
  const msTop = steps * msStep;
  const yCount = (v) => bottom - (v / countTop) * plotH;
  const yMs = (v) => bottom - (v / msTop) * plotH;

  // Grid and both axes' labels.
  const grid = el('g', { class: 'grid' });
  for (let i = 0; i <= steps; i += 1) {
    const y = yCount(i * countStep);
    grid.append(el('line', { x1: MARGIN.left, x2: MARGIN.left + plotW, y1: y, y2: y }));
    grid.append(el('text', { x: MARGIN.left - 8, y: y + 4, class: 'axis-count' }, String(i * countStep)));
    grid.append(el('text', { x: MARGIN.left + plotW + 8, y: y + 4, class: 'axis-ms' }, formatMs(i * msStep)));
  }
  grid.append(el('text', { x: 4, y: 10, class: 'axis-title' }, 'attempts'));
  grid.append(el('text', { x: width - 4, y: 10, class: 'axis-title end' }, 'mean duration'));
  svg.append(grid);

  // Time labels every ten minutes.
  const times = el('g', { class: 'times' });
  buckets.forEach((b, i) => {
    const start = new Date(b.start);
    if (start.getMinutes() % 10 === 0) {
      const x = MARGIN.left + i * slot + slot / 2;
      times.append(el('line', { x1: x, x2: x, y1: bottom, y2: bottom + 4 }));
      times.append(el('text', { x, y: bottom + 17 }, hhmm(start)));
    }
  });
  svg.append(times);

  // Stacked bars, with a tooltip per minute.
  const bars = el('g', { class: 'bars' });
  const line = [];
  buckets.forEach((b, i) => {
    const x = MARGIN.left + i * slot + (slot - barW) / 2;
    const total = b.succeeded + b.failed;
    const group = el('g');
    const start = new Date(b.start);
    const tip = total
      ? `${hhmm(start)}: ${b.succeeded} succeeded, ${b.failed} failed; mean ${formatMs(b.meanDurationMs)}, slowest ${formatMs(b.maxDurationMs)}`
      : `${hhmm(start)}: no attempts`;
    group.append(el('title', {}, tip));
    group.append(el('rect', { x: MARGIN.left + i * slot, y: MARGIN.top, width: slot, height: plotH, class: 'hover' }));
    if (b.succeeded) {
      const y = yCount(b.succeeded);
      group.append(el('rect', { x, y, width: barW, height: bottom - y, class: 'ok' }));
    }
    if (b.failed) {
      const y0 = yCount(b.succeeded);
      const y = yCount(total);
      group.append(el('rect', { x, y, width: barW, height: y0 - y, class: 'fail' }));
    }
    bars.append(group);
    line.push(total ? [MARGIN.left + i * slot + slot / 2, yMs(b.meanDurationMs)] : null);
  });
  svg.append(bars);

  // The mean-duration line, broken over minutes without attempts.
  let d = '';
  line.forEach((p, i) => {
    if (p) d += `${line[i - 1] ? 'L' : 'M'}${p[0].toFixed(1)},${p[1].toFixed(1)} `;
  });
  const latency = el('g', { class: 'latency' });
  if (d) latency.append(el('path', { d: d.trim() }));
  for (const p of line) if (p) latency.append(el('circle', { cx: p[0].toFixed(1), cy: p[1].toFixed(1), r: 2.5 }));
  svg.append(latency);

  if (!maxCount) {
    svg.append(el('text', { x: MARGIN.left + plotW / 2, y: MARGIN.top + plotH / 2, class: 'empty' },
      'No attempts in the last hour yet'));
  }
  return summarize(buckets);
}

export { formatMs };
