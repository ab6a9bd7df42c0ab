// One Socket.IO connection, a fallback poller, and the connection state.
//
// States: 'connecting' (first attempt), 'live' (socket connected),
// 'polling' (socket down, polling because some recording is in progress),
// 'paused' (socket down, nothing in progress so nothing to poll),
// 'offline' (the server or the network cannot be reached).
// The socket keeps reconnecting in the background; once it does, polling stops.
'use strict';

import { formatClock } from './format.js';

export const POLL_INTERVAL_MS = 2000;
const MAX_OFFLINE_RETRY_MS = 30000;
const REFUSED_RETRY_MS = 5000;

export const STATE_TEXT = Object.freeze({
  connecting: 'Connecting…',
  live: 'Live',
  polling: 'Polling every 2 s',
  paused: 'Paused: nothing in progress',
  offline: 'Offline: server unreachable',
});

export class LiveLink {
  /**
   * @param {object} options
   * @param {Function} options.io socket.io-client's `io`.
   * @param {() => object} options.auth Connect auth, asked afresh on each attempt.
   * @param {Object<string, Function>} options.handlers Server event name -> handler.
   * @param {string} options.pollUrl URL polled while the socket is down.
   * @param {(body: object) => void} options.onPoll Handles a 200 poll answer.
   * @param {() => boolean} options.needsPolling Whether anything is in progress.
   * @param {(response: Response) => void} [options.onPollRefused] A 4xx answer.
   * @param {(socket: object) => void} [options.onConnect] After each (re)connect.
   * @param {(state: string, lastUpdate: Date|null) => void} [options.onState]
   * @param {string} [options.etag] ETag of the data already shown.
   */
  constructor(options) {
    this.io = options.io;
    this.auth = options.auth;
    this.handlers = options.handlers;
    this.pollUrl = options.pollUrl;
    this.onPoll = options.onPoll;
    this.needsPolling = options.needsPolling;
    this.onPollRefused = options.onPollRefused ?? (() => {});
    this.onConnect = options.onConnect ?? (() => {});
    this.onState = options.onState ?? (() => {});
    this.pollIntervalMs = options.pollIntervalMs ?? POLL_INTERVAL_MS;
    this.socketOptions = options.socketOptions ?? {};
    this.fetch = options.fetch ?? ((...args) => globalThis.fetch(...args));
    this.timers = options.timers ?? globalThis;

    this.state = 'connecting';
    this.lastUpdate = null;
    this.socket = null;
    this.fallback = false;
    this._pollTimer = null;
    this._retryTimer = null;
    this._polling = false;
    this._failures = 0;
    // The ETag of the data the page was rendered with, if the server gave one.
    this._etag = options.etag ?? null;
  }

  /** Opens the socket; the fallback starts on the first failure. */
  start() {
    const socket = this.io({
      auth: (cb) => cb(this.auth()),
      reconnectionDelay: 1000,
      reconnectionDelayMax: 5000,
      timeout: 5000,
      ...this.socketOptions,
    });
    for (const [name, handler] of Object.entries(this.handlers)) {
      socket.on(name, (payload) => {
        handler(payload);
        this.touch();
      });
    }
    socket.on('connect', () => this._onSocketUp());
    socket.on('connect_error', () => this._onConnectError());
    socket.on('disconnect', (reason) => this._onDisconnect(reason));
    this.socket = socket;
    return this;
  }

  /** Marks data as fresh (an event or a poll answer arrived). */
  touch() {
    this.lastUpdate = new Date();
    this.onState(this.state, this.lastUpdate);
  }

  /**
   * Something changed locally (an upload, a retry): if the socket is down and
   * polling had paused, start polling again.
   */
  nudge() {
    if (this.fallback && !this._polling && this.state !== 'polling') {
      this._schedulePoll(0);
    }
  }

  /** The browser says the network is gone or back. */
  networkChanged(online) {
    if (!online) {
      this._setState('offline');
    } else if (this.fallback) {
      this._schedulePoll(0);
    }
  }

  _onSocketUp() {
    this.fallback = false;
    this._failures = 0;
    this._clearTimer('_pollTimer');
    this._clearTimer('_retryTimer');
    this._setState('live');
    this.onConnect(this.socket);
  }

  _onConnectError() {
    // A refusal by the server's connect handler is not retried by the client
    // library itself (socket.active is false then), so retry it here.
    if (this.socket && !this.socket.active) this._retrySocket(REFUSED_RETRY_MS);
    this._enterFallback();
  }

  _onDisconnect(reason) {
    if (reason === 'io client disconnect') return;
    if (reason === 'io server disconnect') this._retrySocket(REFUSED_RETRY_MS);
    this._enterFallback();
  }

  _retrySocket(delayMs) {
    this._clearTimer('_retryTimer');
    this._retryTimer = this.timers.setTimeout(() => {
      this._retryTimer = null;
      if (this.socket && !this.socket.connected && !this.socket.active) {
        this.socket.connect();
      }
    }, delayMs);
  }

  _enterFallback() {
    if (this.fallback) return;
    this.fallback = true;
    // One poll at once: it catches up on what the socket missed, and tells
    // whether the server is reachable at all.
    this._schedulePoll(0);
  }

  _schedulePoll(delayMs) {
    this._clearTimer('_pollTimer');
    this._pollTimer = this.timers.setTimeout(() => {
      this._pollTimer = null;
      this._pollOnce();
    }, delayMs);
  }

  async _pollOnce() {
    if (!this.fallback || this._polling) return;
    this._polling = true;
    let reachable = true;
    try {
      reachable = await this._fetchOnce();
    } finally {
      this._polling = false;
    }
    if (!this.fallback) return;
    if (!reachable) {
      this._failures += 1;
      this._setState('offline');
      const backoff = this.pollIntervalMs * 2 ** Math.min(this._failures - 1, 4);
      this._schedulePoll(Math.min(backoff, MAX_OFFLINE_RETRY_MS));
      return;
    }
    this._failures = 0;
    if (this.needsPolling()) {
      this._setState('polling');
      this._schedulePoll(this.pollIntervalMs);
    } else {
      this._setState('paused');
    }
  }

  /** One conditional GET; false when the server could not be reached. */
  async _fetchOnce() {
    const headers = { Accept: 'application/json' };
    if (this._etag) headers['If-None-Match'] = this._etag;
    let response;
    try {
      // 'no-store' keeps the browser cache out of the way, so a 304 reaches us.
      response = await this.fetch(this.pollUrl, { headers, cache: 'no-store' });
    } catch {
      return false;
    }
    if (response.status === 304) {
      this.touch();
      return true;
    }
    if (response.status >= 500) return false;
    if (!response.ok) {
      this.onPollRefused(response);
      this.touch();
      return true;
    }
    let body;
    try {
      body = await response.json();
    } catch {
      return false;
    }
    // Only remember the ETag once the body was applied.
    this.onPoll(body);
    this._etag = response.headers.get('ETag');
    this.touch();
    return true;
  }

  _setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.onState(state, this.lastUpdate);
  }

  _clearTimer(name) {
    if (this[name] !== null) {
      this.timers.clearTimeout(this[name]);
      this[name] = null;
    }
  }
}

/** Renders a LiveLink's state into the indicator element. */
export class ConnectionIndicator {
  constructor(element) {
    this.element = element;
    this.label = element.querySelector('[data-field="label"]');
    this.updated = element.querySelector('[data-field="updated"]');
  }

  render(state, lastUpdate) {
    if (this.element.dataset.state !== state) {
      this.element.dataset.state = state;
      this.label.textContent = STATE_TEXT[state] ?? state;
    }
    if (lastUpdate) {
      this.updated.dateTime = lastUpdate.toISOString();
      this.updated.textContent = `updated ${formatClock(lastUpdate)}`;
    }
  }
}

/** Wires a LiveLink to an indicator and to the browser's online events. */
export function startLive(options, indicatorElement) {
  const indicator = new ConnectionIndicator(indicatorElement);
  const link = new LiveLink({
    ...options,
    onState: (state, lastUpdate) => indicator.render(state, lastUpdate),
  });
  window.addEventListener('online', () => link.networkChanged(true));
  window.addEventListener('offline', () => link.networkChanged(false));
  return link.start();
}
