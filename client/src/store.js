// The client's copy of the recordings it knows, keyed by id, ordered by seq.
'use strict';

import { isActive } from './format.js';

export class RecordingStore {
  constructor() {
    /** @type {Map<string, object>} */
    this.byId = new Map();
    this.stateCounts = new Map();
  }

  get size() {
    return this.byId.size;
  }

  get(id) {
    return this.byId.get(id);
  }

  /** Seqs of every known recording, as sent in the socket's resume auth. */
  seqs() {
    const seqs = {};
    for (const [id, status] of this.byId) seqs[id] = Number(status.seq ?? 0);
    return seqs;
  }

  /**
   * Keeps `status` if it is new or its seq is higher than the known one.
   * Returns the previous status ({} when new), or null when it was stale.
   */
  apply(status) {
    if (!status || typeof status.id !== 'string') return null;
    const previous = this.byId.get(status.id);
    if (previous && Number(status.seq ?? 0) <= Number(previous.seq ?? 0)) {
      return null;
    }
    if (previous) this._count(previous.state, -1);
    this._count(status.state, 1);
    this.byId.set(status.id, status);
    return previous ?? {};
  }

  /** Forgets a recording; returns whether it was known. */
  remove(id) {
    const previous = this.byId.get(id);
    if (!previous) return false;
    this._count(previous.state, -1);
    this.byId.delete(id);
    return true;
  }

  /** Ids known here but absent from `ids` (an authoritative full list). */
  missingFrom(ids) {
    const keep = new Set(ids);
    return [...this.byId.keys()].filter((id) => !keep.has(id));
  }

  count(state) {
    return this.stateCounts.get(state) ?? 0;
  }

  /** True when some recording is validated or processing. */
  anyActive() {
    return this.count('validated') + this.count('processing') > 0;
  }

  has(id) {
    return this.byId.has(id);
  }

  isActive(id) {
    const status = this.byId.get(id);
    return Boolean(status && isActive(status.state));
  }

  _count(state, delta) {
    this.stateCounts.set(state, (this.stateCounts.get(state) ?? 0) + delta);
  }
}
