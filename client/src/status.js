// The /status list page: live rows keyed by id, filter, sort and upload.
'use strict';

import { io } from '/vendor/socket.io.esm.min.js';
import { startLive } from './live.js';
import { RecordingStore } from './store.js';
import { fillRow } from './rows.js';
import { formatCount, isActive, stateLabel } from './format.js';
import { setupUpload } from './upload.js';
import { readJsonScript } from './dom.js';

const FILTERS = Object.freeze({
  all: () => true,
  active: (state) => isActive(state),
  validated: (state) => state === 'validated',
  processing: (state) => state === 'processing',
  completed: (state) => state === 'completed',
  error: (state) => state === 'error',
});

const ORDERS = Object.freeze({
  newest: (a, b) => compareText(b.created_at, a.created_at) || compareText(b.id, a.id),
  oldest: (a, b) => compareText(a.created_at, b.created_at) || compareText(a.id, b.id),
  name: (a, b) => String(a.name ?? '').localeCompare(String(b.name ?? ''), undefined,
    { numeric: true, sensitivity: 'base' }) || compareText(a.id, b.id),
});

function compareText(a, b) {
  const x = String(a ?? '');
  const y = String(b ?? '');
  return x < y ? -1 : x > y ? 1 : 0;
}

export class StatusList {
  constructor({ list, template, summary, empty, announcer }) {
    this.list = list;
    this.template = template;
    this.summary = summary;
    this.empty = empty;
    this.announcer = announcer;
    this.store = new RecordingStore();
    /** @type {Map<string, HTMLElement>} */
    this.rows = new Map();
    /** Changes waiting for the next frame: id -> status, or null to remove. */
    this.pending = new Map();
    this.frame = null;
    this.filter = 'all';
    this.order = 'newest';
    this._adoptServerRows();
  }

  /** Reads the server-rendered rows into the store (id, seq, state, name...). */
  _adoptServerRows() {
    for (const row of this.list.querySelectorAll(':scope > li.rec')) {
      const id = row.dataset.id;
      this.rows.set(id, row);
      this.store.apply({
        id,
        seq: Number(row.dataset.seq ?? 0),
        state: row.dataset.state,
        created_at: row.dataset.created,
        name: row.querySelector('[data-field="name"]').textContent,
        partial: true,
      });
    }
  }

  /** Applies one status; the row is touched only when the seq increased. */
  applyStatus(status) {
    const previous = this.store.apply(status);
    if (previous === null) return false;
    this.pending.set(status.id, { status, previous });
    this._schedule();
    return true;
  }

  remove(id) {
    if (!this.store.remove(id)) return;
    this.pending.set(id, null);
    this._schedule();
  }

  /** A full list (snapshot or poll answer): apply each, drop the unlisted. */
  applyAll(recordings) {
    const list = Array.isArray(recordings) ? recordings : [];
    for (const id of this.store.missingFrom(list.map((r) => r.id))) this.remove(id);
    for (const status of list) this.applyStatus(status);
  }

  setFilter(filter) {
    this.filter = FILTERS[filter] ? filter : 'all';
    for (const row of this.rows.values()) this._applyFilter(row);
    this._renderSummary();
  }

  setOrder(order) {
    this.order = ORDERS[order] ? order : 'newest';
    const compare = ORDERS[this.order];
    const sorted = [...this.rows.entries()]
      .sort(([a], [b]) => compare(this.store.get(a), this.store.get(b)))
      .map(([, row]) => row);
    this.list.append(...sorted);
  }

  _schedule() {
    if (this.frame !== null) return;
    const run = () => {
      this.frame = null;
      this.flush();
    };
    // A hidden tab gets no animation frames; a timeout keeps it current too.
    this.frame = document.hidden ? setTimeout(run, 250) : requestAnimationFrame(run);
  }

  /** Writes the pending changes into the DOM, one row per changed id. */
  flush() {
    const changes = [...this.pending];
    this.pending.clear();
    for (const [id, change] of changes) {
      if (change === null) {
        this._removeRow(id);
      } else {
        this._renderRow(change.status, change.previous);
      }
    }
    if (changes.length) this._renderSummary();
  }

  _renderRow(status, previous) {
    let row = this.rows.get(status.id);
    const isNew = !row;
    if (isNew) {
      row = this.template.content.firstElementChild.cloneNode(true);
      this.rows.set(status.id, row);
    }
    fillRow(row, status, previous.partial ? {} : previous);
    this._applyFilter(row);
    if (isNew) this._insertRow(row, status);
    if (previous.state && previous.state !== status.state) {
      this.announcer.textContent = `${status.name}: ${stateLabel(status.state)}`;
    }
  }

  _insertRow(row, status) {
    const compare = ORDERS[this.order];
    for (const other of this.list.children) {
      const known = this.store.get(other.dataset.id);
      if (known && other !== row && compare(status, known) < 0) {
        this.list.insertBefore(row, other);
        return;
      }
    }
    this.list.append(row);
  }

  _removeRow(id) {
    const row = this.rows.get(id);
    if (!row) return;
    this.rows.delete(id);
    row.remove();
  }

  _applyFilter(row) {
    const hidden = !FILTERS[this.filter](row.dataset.state);
    if (row.hidden !== hidden) row.hidden = hidden;
  }

  _renderSummary() {
    const total = this.store.size;
    const active = this.store.count('validated') + this.store.count('processing');
    const parts = [formatCount(total, 'recording')];
    if (active) parts.push(`${active} in progress`);
    if (this.store.count('error')) parts.push(formatCount(this.store.count('error'), 'error'));
    if (this.filter !== 'all') {
      const shown = Object.keys(FILTERS)
        .filter((state) => state !== 'all' && state !== 'active' && FILTERS[this.filter](state))
        .reduce((sum, state) => sum + this.store.count(state), 0);
      parts.push(`${shown} shown`);
    }
    this.summary.textContent = parts.join(' · ');
    this.empty.hidden = total > 0;
  }
}

function main() {
  const list = new StatusList({
    list: document.getElementById('rec-list'),
    template: document.getElementById('row-template'),
    summary: document.getElementById('summary'),
    empty: document.getElementById('empty'),
    announcer: document.getElementById('announcer'),
  });

  const filter = document.getElementById('filter-state');
  const order = document.getElementById('sort-order');
  filter.addEventListener('change', () => list.setFilter(filter.value));
  order.addEventListener('change', () => list.setOrder(order.value));
  document.getElementById('list-controls').hidden = false;
  // A restored form (back button) may keep earlier choices.
  if (filter.value !== 'all') list.setFilter(filter.value);
  if (order.value !== 'newest') list.setOrder(order.value);

  const boot = readJsonScript('boot') ?? {};
  const link = startLive({
    io,
    auth: () => ({ seqs: list.store.seqs() }),
    etag: typeof boot.etag === 'string' ? boot.etag : null,
    handlers: {
      snapshot: (body) => list.applyAll(body && body.recordings),
      status: (status) => list.applyStatus(status),
      removed: (body) => list.remove(body && body.id),
      resumed: (body) => {
        for (const id of (body && body.removed) ?? []) list.remove(id);
      },
    },
    pollUrl: '/api/recordings',
    onPoll: (body) => list.applyAll(body && body.recordings),
    needsPolling: () => list.store.anyActive(),
  }, document.getElementById('conn'));

  setupUpload(document.getElementById('upload-form'), {
    dropZone: document.getElementById('drop-zone'),
    onCreated: (status) => {
      list.applyStatus(status);
      list.flush();
      link.nudge();
    },
  });

  // For tests and debugging in the console.
  window.signwatch = { list, link };
}

main();
