// The /recordings/<id> page: one recording, live, with its results.
'use strict';

import { io } from '/vendor/socket.io.esm.min.js';
import { startLive } from './live.js';
import { requestJson } from './api.js';
import { field, h, readJsonScript, setText } from './dom.js';
import { fillProgress } from './rows.js';
import { parseDetections, renderTimeline } from './timeline.js';
import {
  errorText, formatBytes, formatDateTime, formatDuration, isActive, sortedClasses,
  stateLabel,
} from './format.js';

function apiUrl(id, suffix = '') {
  return `/api/recordings/${encodeURIComponent(id)}${suffix}`;
}

function isVideo(download) {
  return download.kind === 'video' || /\.(mp4|webm)$/i.test(download.name ?? '');
}

function factItems(status) {
  const video = status.video ?? {};
  const options = status.options ?? {};
  const result = status.result ?? {};
  const facts = [];
  const add = (term, value) => {
    if (value !== '' && value !== null && value !== undefined) facts.push([term, String(value)]);
  };
  if (typeof video.duration_s === 'number') add('Duration', formatDuration(video.duration_s));
  if (video.width) add('Resolution', `${video.width}×${video.height}`);
  if (typeof video.fps === 'number') add('Frame rate', `${Number(video.fps.toFixed(2))} fps`);
  if (video.frames) add('Frames', video.frames);
  add('Codec', video.codec);
  if (typeof video.size_bytes === 'number') add('File size', formatBytes(video.size_bytes));
  add('Uploaded', formatDateTime(status.created_at));
  if (Object.keys(options).length) {
    add('Options', `imgsz ${options.imgsz}, conf ${options.conf}, stride ${options.stride},`
      + ` batch ${options.batch}, ${options.device}${options.annotate ? ', annotated video' : ''}`);
  }
  if (status.attempts) add('Attempts', status.attempts);
  add('Model', result.model);
  if (typeof result.wall_s === 'number') add('Processing time', formatDuration(result.wall_s));
  return facts;
}

export class RecordingPage {
  constructor(root, status) {
    this.root = root;
    this.status = status;
    this.id = status.id;
    this.deleted = false;
    this.memo = new Map();
    this.timelineKey = null;
    this.buttons = {
      cancel: document.getElementById('btn-cancel'),
      retry: document.getElementById('btn-retry'),
      delete: document.getElementById('btn-delete'),
    };
    this.message = document.getElementById('action-message');
    this.error = document.getElementById('action-error');
    this.announcer = document.getElementById('announcer');
  }

  /** Applies a status of this recording if its seq is newer. */
  apply(status) {
    if (!status || status.id !== this.id || this.deleted) return false;
    if (Number(status.seq ?? 0) <= Number(this.status.seq ?? 0)) return false;
    const previous = this.status;
    this.status = status;
    this.render(previous);
    return true;
  }

  /** Renders each part whose inputs changed since the last render. */
  render(previous = null) {
    const s = this.status;
    this.root.dataset.seq = String(s.seq ?? 0);
    this.root.dataset.state = s.state;
    setText(field(this.root, 'name'), String(s.name ?? s.id));
    setText(field(this.root, 'state'), stateLabel(s.state));
    document.title = `${s.name ?? s.id} · signwatch`;
    fillProgress(field(this.root, 'progress'), s);

    const error = field(this.root, 'error');
    const message = s.state === 'error' ? errorText(s.error) : '';
    error.hidden = !message;
    setText(error, message);
    this._renderButtons();

    if (this._changed('facts', [s.video, s.options, s.attempts, s.result && s.result.model])) {
      this._renderFacts();
    }
    if (this._changed('result', [s.state, s.result])) this._renderCounts();
    if (this._changed('downloads', s.downloads)) this._renderDownloads();
    if (s.state === 'completed') this._loadTimeline();
    if (previous && previous.state !== s.state) {
      this.announcer.textContent = `${s.name}: ${stateLabel(s.state)}`;
    }
  }

  markDeleted() {
    if (this.deleted) return;
    this.deleted = true;
    this.root.hidden = true;
    const notice = document.getElementById('deleted-notice');
    notice.hidden = false;
    notice.querySelector('a').focus();
  }

  _changed(key, value) {
    const text = JSON.stringify(value ?? null);
    if (this.memo.get(key) === text) return false;
    this.memo.set(key, text);
    return true;
  }

  _renderButtons() {
    const state = this.status.state;
    this.buttons.cancel.disabled = !isActive(state);
    this.buttons.retry.disabled = state !== 'error';
    // The server refuses to delete a queued or running recording (409).
    this.buttons.delete.disabled = isActive(state);
    this.buttons.delete.title = isActive(state) ? 'Cancel it before deleting.' : '';
  }

  _renderFacts() {
    const items = factItems(this.status).map(([term, value]) =>
      h('div', {}, h('dt', {}, term), h('dd', {}, value)));
    field(this.root, 'facts').replaceChildren(...items);
  }

  _renderCounts() {
    const s = this.status;
    const result = s.result ?? {};
    const totals = field(this.root, 'totals');
    const table = field(this.root, 'counts');
    if (s.state !== 'completed') {
      setText(totals, 'Counts appear when processing is complete.');
      table.hidden = true;
      return;
    }
    setText(totals, `${result.tracks_total ?? 0} unique signs, ${result.detections_total ?? 0}`
      + ` detections in ${result.frames_processed ?? 0} frames.`);
    const rows = sortedClasses(result).map(([name, c]) => h('tr', {},
      h('th', { scope: 'row' }, name),
      h('td', {}, String(c.tracks ?? 0)),
      h('td', {}, String(c.detections ?? 0)),
      h('td', {}, formatDuration(c.first_s)),
      h('td', {}, formatDuration(c.last_s))));
    table.tBodies[0].replaceChildren(...rows);
    table.hidden = rows.length === 0;
  }

  _renderDownloads() {
    const downloads = Array.isArray(this.status.downloads) ? this.status.downloads : [];
    const thumbs = downloads.filter((d) => d.kind === 'thumbnail');
    const files = downloads.filter((d) => d.kind !== 'thumbnail');

    const gallery = field(this.root, 'gallery');
    gallery.replaceChildren(...(thumbs.length
      ? thumbs.map((d) => {
        const label = String(d.name).split('/').pop();
        return h('li', {}, h('figure', {},
          h('a', { href: d.url }, h('img', { src: d.url, alt: `Detection ${label}`, loading: 'lazy' })),
          h('figcaption', {}, label)));
      })
      : [h('li', { className: 'hint' }, 'No thumbnails yet.')]));

    const list = field(this.root, 'downloads');
    list.replaceChildren(...(files.length
      ? files.map((d) => h('li', {},
        h('a', { href: d.url, download: '' }, String(d.name)), ' ',
        h('span', { className: 'hint' },
          `${d.kind ?? ''}${typeof d.size_bytes === 'number' ? `, ${formatBytes(d.size_bytes)}` : ''}`)))
      : [h('li', { className: 'hint' }, 'No result files yet.')]));

    const player = field(this.root, 'player');
    const video = files.find(isVideo);
    const current = player.querySelector('video');
    if (!video) {
      player.replaceChildren();
    } else if (!current || current.getAttribute('src') !== video.url) {
      player.replaceChildren(h('video', {
        controls: true, preload: 'metadata', src: video.url, 'aria-label': 'Annotated video',
      }));
    }
  }

  /** Fetches detections.jsonl once per completed run and draws the timeline. */
  async _loadTimeline() {
    const s = this.status;
    const key = `${s.updated_at}|${s.attempts}`;
    if (this.timelineKey === key) return;
    this.timelineKey = key;
    const container = field(this.root, 'timeline');
    const entry = (s.downloads ?? []).find((d) => d.name === 'detections.jsonl');
    const url = entry ? entry.url : apiUrl(this.id, '/files/detections.jsonl');
    container.replaceChildren(h('p', { className: 'hint' }, 'Loading detections…'));
    try {
      const response = await fetch(url, { cache: 'no-store' });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const detections = parseDetections(await response.text());
      const video = s.video ?? {};
      renderTimeline(container, detections, video.duration_s, video.fps);
    } catch (err) {
      this.timelineKey = null;
      container.replaceChildren(h('p', { className: 'hint' },
        `The detections could not be loaded (${err.message}).`));
    }
  }

  /** Wires the cancel, retry and delete buttons. */
  bindActions(onChange) {
    const run = async (button, method, suffix, done) => {
      this.error.textContent = '';
      this.message.textContent = '';
      button.disabled = true;
      try {
        const body = await requestJson(method, apiUrl(this.id, suffix));
        done(body);
        onChange();
      } catch (err) {
        this.error.textContent = err.message;
      } finally {
        if (!this.deleted) this._renderButtons();
      }
    };
    this.buttons.cancel.addEventListener('click', () =>
      run(this.buttons.cancel, 'POST', '/cancel', (body) => {
        this.message.textContent = 'Cancelled.';
        this.apply(body);
      }));
    this.buttons.retry.addEventListener('click', () =>
      run(this.buttons.retry, 'POST', '/retry', (body) => {
        this.message.textContent = 'Queued again.';
        this.apply(body);
      }));
    this.buttons.delete.addEventListener('click', () => {
      // eslint-disable-next-line no-alert -- a native dialog is keyboard-usable everywhere
      if (!window.confirm(`Delete "${this.status.name}" and all its results?`)) return;
      run(this.buttons.delete, 'DELETE', '', () => this.markDeleted());
    });
    document.getElementById('actions').hidden = false;
  }
}

function main() {
  const root = document.getElementById('recording');
  const status = readJsonScript('recording-data');
  const page = new RecordingPage(root, status);
  page.render();

  const link = startLive({
    io,
    auth: () => ({ all: false, seqs: { [page.id]: Number(page.status.seq ?? 0) } }),
    handlers: {
      snapshot: (body) => {
        // With {all: false} a snapshot may hold only subscribed rooms, so a
        // missing entry proves nothing; deletion arrives as `removed` or a 404.
        const mine = ((body && body.recordings) ?? []).find((r) => r.id === page.id);
        if (mine) page.apply(mine);
      },
      status: (body) => page.apply(body),
      removed: (body) => {
        if (body && body.id === page.id) page.markDeleted();
      },
      resumed: (body) => {
        if (((body && body.removed) ?? []).includes(page.id)) page.markDeleted();
      },
    },
    onConnect: (socket) => {
      socket.emit('subscribe', { id: page.id }, (ack) => {
        if (ack && ack.ok) {
          page.apply(ack.status);
        } else if (ack) {
          page.error.textContent = String(ack.error ?? 'Could not follow this recording.');
        }
      });
    },
    pollUrl: apiUrl(page.id),
    onPoll: (body) => page.apply(body),
    onPollRefused: (response) => {
      if (response.status === 404) page.markDeleted();
    },
    needsPolling: () => !page.deleted && isActive(page.status.state),
  }, document.getElementById('conn'));

  page.bindActions(() => link.nudge());
  window.signwatch = { page, link };
}

main();
