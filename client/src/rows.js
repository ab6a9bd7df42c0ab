// Fills one list row (the markup of server/templates/_macros.html rec_row)
// from a status object. Only fields whose text changed are written.
'use strict';

import { field, h, setText } from './dom.js';
import {
  errorText, formatDuration, formatEta, formatFps, formatPercent, formatUtc,
  isActive, percentDone, sortedClasses, stateLabel,
} from './format.js';

export function recordingUrl(id) {
  return `/recordings/${encodeURIComponent(id)}`;
}

/** Updates the progress box (bar, percent, fps, ETA) of a row or page. */
export function fillProgress(box, status) {
  const progress = status.progress ?? {};
  box.hidden = !isActive(status.state);
  const bar = field(box, 'bar');
  const percent = percentDone(progress);
  if (percent === null) {
    bar.removeAttribute('value');
    setText(field(box, 'percent'), status.state === 'validated' ? 'Waiting' : '');
  } else {
    bar.value = percent;
    setText(bar, formatPercent(percent));
    setText(field(box, 'percent'), formatPercent(percent));
  }
  setText(field(box, 'fps'), formatFps(progress.fps));
  setText(field(box, 'eta'), progress.eta_s === null || progress.eta_s === undefined
    ? '' : formatEta(progress.eta_s));
}

function videoFacts(video) {
  if (!video) return '';
  const parts = [];
  if (typeof video.duration_s === 'number') parts.push(formatDuration(video.duration_s));
  if (video.width) parts.push(`${video.width}×${video.height}`);
  return parts.join(' · ');
}

function countItems(result) {
  const classes = sortedClasses(result);
  if (classes.length === 0) return [h('li', { className: 'count count-none' }, 'No signs found')];
  return classes.map(([name, counts]) => h('li', {
    className: 'count',
    title: `${counts.tracks ?? 0} tracks, ${counts.detections ?? 0} detections`,
  }, h('span', { className: 'count-class' }, name), ' ',
  h('span', { className: 'count-n' }, String(counts.tracks ?? 0))));
}

/** Writes `status` into `row`; `previous` is the status shown so far ({} if new). */
export function fillRow(row, status, previous) {
  const id = status.id;
  if (row.dataset.id !== id) {
    row.id = `rec-${id}`;
    row.dataset.id = id;
  }
  row.dataset.seq = String(status.seq ?? 0);
  row.dataset.state = status.state;
  row.dataset.created = status.created_at ?? '';

  const link = field(row, 'name');
  const href = recordingUrl(id);
  if (link.getAttribute('href') !== href) link.setAttribute('href', href);
  setText(link, String(status.name ?? id));
  setText(field(row, 'state'), stateLabel(status.state));

  const created = field(row, 'created');
  if (created.getAttribute('datetime') !== status.created_at) {
    created.setAttribute('datetime', status.created_at ?? '');
    setText(created, formatUtc(status.created_at));
  }
  setText(field(row, 'facts'), videoFacts(status.video));

  const box = field(row, 'progress');
  field(box, 'bar').setAttribute('aria-label', `Progress of ${status.name ?? id}`);
  fillProgress(box, status);

  const counts = field(row, 'counts');
  const completed = status.state === 'completed';
  counts.hidden = !completed;
  if (completed && (previous.state !== 'completed' || previous.result !== status.result)) {
    counts.replaceChildren(...countItems(status.result));
  }

  const error = field(row, 'error');
  const message = status.state === 'error' ? errorText(status.error) : '';
  error.hidden = !message;
  setText(error, message);
}
