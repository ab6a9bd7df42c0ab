// Detections over the video's duration: one lane per sign class, each lane
// binned so thousands of detections stay a few dozen elements.
'use strict';

import { h } from './dom.js';
import { formatCount, formatDuration } from './format.js';

export const BIN_COUNT = 100;

/** Parses detections.jsonl text; bad lines are skipped. */
export function parseDetections(text) {
  const detections = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const record = JSON.parse(line);
      if (record && typeof record === 'object') detections.push(record);
    } catch {
      // A partial last line while the file is being written: skip it.
    }
  }
  return detections;
}

/**
 * Groups detections into `binCount` time bins per class.
 * Returns [{name, total, tracks, bins: Map<bin, count>, first, last}], busiest first.
 */
export function binDetections(detections, durationS, fps, binCount = BIN_COUNT) {
  const lanes = new Map();
  for (const det of detections) {
    const time = typeof det.time_s === 'number'
      ? det.time_s
      : (typeof det.frame === 'number' && fps ? det.frame / fps : null);
    if (time === null) continue;
    const name = String(det.class ?? 'unknown');
    let lane = lanes.get(name);
    if (!lane) {
      lane = { name, total: 0, trackIds: new Set(), bins: new Map(), first: time, last: time };
      lanes.set(name, lane);
    }
    const bin = Math.min(binCount - 1, Math.max(0, Math.floor((time / durationS) * binCount)));
    lane.bins.set(bin, (lane.bins.get(bin) ?? 0) + 1);
    lane.total += 1;
    if (det.track_id !== null && det.track_id !== undefined) lane.trackIds.add(det.track_id);
    lane.first = Math.min(lane.first, time);
    lane.last = Math.max(lane.last, time);
  }
  return [...lanes.values()]
    .map(({ trackIds, ...lane }) => ({ ...lane, tracks: trackIds.size }))
    .sort((a, b) => b.total - a.total || a.name.localeCompare(b.name));
}

function axis(durationS) {
  const ticks = [0, 0.25, 0.5, 0.75, 1];
  return h('div', { className: 'tl-axis', 'aria-hidden': 'true' },
    ticks.map((t) => h('span', {
      className: 'tl-tick',
      style: `left: ${t * 100}%`,
    }, formatDuration(t * durationS))));
}

function lane(row, durationS, binCount, maxCount) {
  const binWidth = durationS / binCount;
  const marks = [...row.bins].map(([bin, count]) => {
    const from = formatDuration(bin * binWidth);
    const to = formatDuration((bin + 1) * binWidth);
    return h('span', {
      className: 'tl-mark',
      title: `${row.name}: ${formatCount(count, 'detection')}, ${from} to ${to}`,
      style: `left: ${(bin / binCount) * 100}%; width: ${100 / binCount}%;`
        + ` opacity: ${(0.35 + 0.65 * (count / maxCount)).toFixed(2)}`,
    });
  });
  return h('div', { className: 'tl-lane' },
    h('span', { className: 'tl-label' }, row.name),
    h('div', { className: 'tl-track' }, marks));
}

/** Draws the timeline into `container`, replacing what was there. */
export function renderTimeline(container, detections, durationS, fps) {
  const duration = durationS > 0 ? durationS : Math.max(1, ...detections.map((d) => d.time_s ?? 0));
  const rows = binDetections(detections, duration, fps);
  if (rows.length === 0) {
    container.replaceChildren(h('p', { className: 'hint' }, 'No signs were detected in this video.'));
    return;
  }
  const maxCount = Math.max(...rows.flatMap((row) => [...row.bins.values()]));
  const summary = rows.map((row) =>
    `${row.name}: ${formatCount(row.total, 'detection')} from ${formatDuration(row.first)}`
    + ` to ${formatDuration(row.last)}`).join('; ');
  const chart = h('div', {
    className: 'tl-chart',
    role: 'img',
    'aria-label': `Detections over ${formatDuration(duration)}. ${summary}.`,
  }, rows.map((row) => lane(row, duration, BIN_COUNT, maxCount)), h('div', { className: 'tl-lane' },
    h('span', { className: 'tl-label' }), axis(duration)));
  container.replaceChildren(chart);
}
