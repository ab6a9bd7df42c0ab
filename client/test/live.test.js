// Unit tests of the connection state machine and fallback poller (node --test).
'use strict';

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { LiveLink } from '../src/live.js';
import { RecordingStore } from '../src/store.js';

/** A socket.io-client stand-in: records handlers, lets the test fire events. */
class FakeSocket {
  constructor(options) {
    this.options = options;
    this.handlers = new Map();
    this.active = true;
    this.connected = false;
    this.connects = 0;
  }

  on(name, handler) {
    this.handlers.set(name, handler);
  }

  fire(name, payload) {
    if (name === 'connect') this.connected = true;
    if (name === 'disconnect') this.connected = false;
    this.handlers.get(name)(payload);
  }

  connect() {
    this.connects += 1;
  }
}

/** Timers the test advances by hand. */
class FakeTimers {
  constructor() {
    this.now = 0;
    this.queue = [];
    this.nextId = 1;
  }

  setTimeout(fn, ms) {
    const id = this.nextId++;
    this.queue.push({ id, at: this.now + ms, fn });
    return id;
  }

  clearTimeout(id) {
    this.queue = this.queue.filter((t) => t.id !== id);
  }

  /** Runs every timer due within `ms`, letting promises settle in between. */
  async advance(ms) {
    const end = this.now + ms;
    for (;;) {
      this.queue.sort((a, b) => a.at - b.at);
      const next = this.queue[0];
      if (!next || next.at > end) break;
      this.queue.shift();
      this.now = next.at;
      next.fn();
      await settle();
    }
    this.now = end;
    await settle();
  }
}

async function settle() {
  for (let i = 0; i < 10; i += 1) await Promise.resolve();
}

function response(status, body = null, etag = null) {
  return {
    status,
    ok: status >= 200 && status < 300,
    headers: { get: (name) => (name === 'ETag' ? etag : null) },
    json: async () => body,
  };
}

function setup({ answers = [], active = () => true } = {}) {
  const timers = new FakeTimers();
  const requests = [];
  const states = [];
  const polled = [];
  let socket = null;
  const link = new LiveLink({
    io: (options) => {
      socket = new FakeSocket(options);
      return socket;
    },
    auth: () => ({ seqs: { a: 1 } }),
    handlers: { status: () => {} },
    pollUrl: '/api/recordings',
    onPoll: (body) => polled.push(body),
    needsPolling: active,
    onState: (state) => states.push(state),
    fetch: async (url, init) => {
      requests.push({ url, init });
      const answer = answers.length > 1 ? answers.shift() : answers[0];
      if (answer instanceof Error) throw answer;
      return answer ?? response(304);
    },
    timers,
  }).start();
  return { link, socket, timers, requests, states, polled };
}

test('auth is asked afresh on each connection attempt', () => {
  const { socket } = setup();
  let sent = null;
  socket.options.auth((value) => { sent = value; });
  assert.deepEqual(sent, { seqs: { a: 1 } });
});

test('polls every 2 s while something is active, then pauses', async () => {
  let active = true;
  const { link, socket, timers, requests } = setup({ active: () => active });
  socket.fire('connect_error', new Error('xhr poll error'));
  await timers.advance(0);
  assert.equal(link.state, 'polling');
  assert.equal(requests.length, 1);

  await timers.advance(6000);
  assert.equal(requests.length, 4);

  active = false;
  await timers.advance(2000);
  assert.equal(link.state, 'paused');
  const count = requests.length;
  await timers.advance(10000);
  assert.equal(requests.length, count);
});

test('reconnecting stops polling and says live', async () => {
  const { link, socket, timers, requests } = setup();
  socket.fire('connect');
  socket.fire('disconnect', 'transport close');
  await timers.advance(0);
  assert.equal(link.state, 'polling');
  socket.fire('connect');
  assert.equal(link.state, 'live');
  const count = requests.length;
  await timers.advance(10000);
  assert.equal(requests.length, count);
});

test('repeated connect errors do not stack pollers', async () => {
  const { socket, timers, requests } = setup();
  for (let i = 0; i < 5; i += 1) socket.fire('connect_error', new Error('x'));
  await timers.advance(0);
  await timers.advance(4000);
  assert.equal(requests.length, 3);
});

test('the ETag goes back as If-None-Match and 304 applies nothing', async () => {
  const { socket, timers, requests, polled } = setup({
    answers: [response(200, { recordings: [] }, '"v1"'), response(304)],
  });
  socket.fire('connect_error', new Error('x'));
  await timers.advance(2000);
  assert.equal(requests[0].init.headers['If-None-Match'], undefined);
  assert.equal(requests[1].init.headers['If-None-Match'], '"v1"');
  assert.equal(requests[0].init.cache, 'no-store');
  assert.equal(polled.length, 1);
});

test('an unreachable server reads offline and is retried with backoff', async () => {
  const { link, socket, timers, requests } = setup({
    answers: [new TypeError('Failed to fetch')],
  });
  socket.fire('connect_error', new Error('x'));
  await timers.advance(0);
  assert.equal(link.state, 'offline');
  await timers.advance(2000);
  assert.equal(requests.length, 2);
  await timers.advance(4000);
  assert.equal(requests.length, 3);
});

test('a 5xx answer reads offline', async () => {
  const { link, socket, timers } = setup({ answers: [response(502)] });
  socket.fire('connect_error', new Error('x'));
  await timers.advance(0);
  assert.equal(link.state, 'offline');
});

test('nudge restarts polling after a pause', async () => {
  let active = false;
  const { link, socket, timers, requests } = setup({ active: () => active });
  socket.fire('connect_error', new Error('x'));
  await timers.advance(0);
  assert.equal(link.state, 'paused');
  active = true;
  link.nudge();
  await timers.advance(0);
  assert.equal(link.state, 'polling');
  assert.equal(requests.length, 2);
});

test('a refused connection is retried by hand', async () => {
  const { socket, timers } = setup();
  socket.active = false;
  socket.fire('connect_error', new Error('refused'));
  await timers.advance(5000);
  assert.equal(socket.connects, 1);
});

test('the store keeps only newer seqs and counts active recordings', () => {
  const store = new RecordingStore();
  assert.deepEqual(store.apply({ id: 'a', seq: 2, state: 'processing' }), {});
  assert.equal(store.apply({ id: 'a', seq: 2, state: 'completed' }), null);
  assert.equal(store.apply({ id: 'a', seq: 1, state: 'completed' }), null);
  assert.equal(store.anyActive(), true);
  assert.equal(store.apply({ id: 'a', seq: 3, state: 'completed' }).seq, 2);
  assert.equal(store.anyActive(), false);
  assert.deepEqual(store.seqs(), { a: 3 });
  assert.deepEqual(store.missingFrom(['b']), ['a']);
  assert.equal(store.remove('a'), true);
  assert.equal(store.count('completed'), 0);
});
