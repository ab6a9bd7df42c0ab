// Formatting of status fields for display. Pure functions, no DOM.
'use strict';

export const STATE_LABELS = Object.freeze({
  validated: 'Queued',
  processing: 'Processing',
  completed: 'Completed',
  error: 'Error',
});

export const ACTIVE_STATES = Object.freeze(['validated', 'processing']);

/** True while the pipeline still has work to do on this recording. */
export function isActive(state) {
  return ACTIVE_STATES.includes(state);
}

export function stateLabel(state) {
  return STATE_LABELS[state] ?? String(state ?? 'unknown');
}

/** Percent done (0-100) or null when the total is unknown. */
export function percentDone(progress) {
  if (!progress || !progress.frames_total) return null;
  const ratio = Number(progress.frames_done ?? 0) / Number(progress.frames_total);
  return Math.max(0, Math.min(100, ratio * 100));
}

export function formatPercent(percent) {
  if (percent === null || percent === undefined) return '';
  return `${Math.floor(percent)}%`;
}

export function formatFps(fps) {
  if (fps === null || fps === undefined || !Number.isFinite(Number(fps))) return '';
  return `${Number(fps).toFixed(1)} fps`;
}

/** Seconds as "8.8 s", "1 min 05 s" or "1 h 02 min". */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined) return '';
  const s = Number(seconds);
  if (!Number.isFinite(s) || s < 0) return '';
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.round(s)} s`;
  const whole = Math.round(s);
  const hours = Math.floor(whole / 3600);
  const minutes = Math.floor((whole % 3600) / 60);
  const secs = whole % 60;
  if (hours > 0) return `${hours} h ${String(minutes).padStart(2, '0')} min`;
  return `${minutes} min ${String(secs).padStart(2, '0')} s`;
}

export function formatEta(seconds) {
  const text = formatDuration(seconds);
  return text ? `ETA ${text}` : '';
}

export function formatBytes(bytes) {
  const n = Number(bytes);
  if (!Number.isFinite(n) || n < 0) return '';
  if (n < 1024) return `${n} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

/** An ISO timestamp in the reader's locale, date and time. */
export function formatDateTime(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return date.toLocaleString(undefined, {
    year: 'numeric', month: 'short', day: 'numeric',
    hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
}

export function formatClock(date) {
  if (!date) return '';
  return date.toLocaleTimeString(undefined, {
    hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
}

export function formatCount(n, singular, plural = `${singular}s`) {
  const value = Number(n ?? 0);
  return `${value.toLocaleString()} ${value === 1 ? singular : plural}`;
}

/** The error text of a status: a string, or an object with a message. */
export function errorText(error) {
  if (!error) return '';
  if (typeof error === 'string') return error;
  return String(error.message ?? error.code ?? JSON.stringify(error));
}

/** Sign classes of a completed result, most tracks first. */
export function sortedClasses(result) {
  const classes = result && result.classes ? Object.entries(result.classes) : [];
  return classes.sort((a, b) =>
    (b[1].tracks ?? 0) - (a[1].tracks ?? 0) ||
    (b[1].detections ?? 0) - (a[1].detections ?? 0) ||
    a[0].localeCompare(b[0]));
}

/** An ISO timestamp as "2026-12-03 17:30 UTC", as the server renders it. */
export function formatUtc(iso) {
  if (!iso) return '';
  return `${String(iso).slice(0, 16).replace('T', ' ')} UTC`;
}
