// The sluice console's only script (served from /console/console.js; the pages allow no
// inline script). It adds, where a page asks for it:
// - [data-replay]: a terminal player over the screen frames of a recorded session;
// - [data-live]: a live terminal, fed by server-sent frames;
// - [data-live-events]: a live session's statements as they happen;
// - [data-follow]: the reviews inbox refreshed when a review is created or decided;
// - form[data-confirm]: a confirmation before the form is sent.
// Frames are rows of [text, classes] runs (see sluice_terminal::replay); text is only ever
// set with textContent, so nothing recorded is interpreted as HTML.
'use strict';

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

// A terminal screen: a <pre> of rows, each a run of styled spans.
class Screen {
  constructor(parent) {
    this.pre = el('pre', 'screen');
    this.pre.setAttribute('aria-label', 'Terminal screen');
    this.pre.tabIndex = 0;
    this.rows = [];
    parent.appendChild(this.pre);
  }

  resize(rows, cols) {
    this.pre.replaceChildren();
    this.rows = [];
    for (let i = 0; i < rows; i++) {
      const row = el('div', 'row');
      this.pre.appendChild(row);
      this.rows.push(row);
    }
    // CSSOM, not a style attribute: allowed by the page's CSP.
    this.pre.style.width = `${cols}ch`;
  }

  apply(frame) {
    if (frame.size) this.resize(frame.size[0], frame.size[1]);
    for (const [r, runs] of frame.lines) {
      const row = this.rows[r];
      if (!row) continue;
      row.replaceChildren(...runs.map(([text, cls]) => el('span', cls, text)));
    }
  }

  text() {
    return this.rows.map((r) => r.textContent).join('\n');
  }
}

function clock(ms) {
  const s = Math.floor(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

// The player of a recorded terminal: Play/Pause, a position slider, speed, jump to end.
async function replay(box) {
  let data;
  try {
    const answer = await fetch(box.dataset.replay, { credentials: 'same-origin' });
    if (!answer.ok) throw new Error(`${answer.status} ${await answer.text()}`);
    data = await answer.json();
  } catch (e) {
    box.replaceChildren(el('p', 'error', `The terminal could not be loaded: ${e.message}`));
    return;
  }
  box.replaceChildren();
  const controls = el('div', 'controls');
  const play = el('button', '', 'Play');
  play.type = 'button';
  const end = el('button', '', 'Jump to end');
  end.type = 'button';
  const position = el('input');
  position.type = 'range';
  position.min = '0';
  position.max = String(Math.max(data.duration_ms, 1));
  position.value = '0';
  position.setAttribute('aria-label', 'Position');
  const time = el('span', 'time', `0:00 / ${clock(data.duration_ms)}`);
  const speedLabel = el('label', '', 'Speed ');
  const speed = el('select');
  for (const s of [1, 2, 4, 16]) {
    const o = el('option', '', `${s}×`);
    o.value = String(s);
    speed.appendChild(o);
  }
  speedLabel.appendChild(speed);
  controls.append(play, position, time, speedLabel, end);
  box.appendChild(controls);
  const screen = new Screen(box);

  let next = 0; // the next frame to show
  let at = 0; // the position shown, ms
  let timer = null;
  const show = (ms) => {
    if (ms < at) {
      next = 0;
    }
    while (next < data.frames.length && data.frames[next].t <= ms) {
      screen.apply(data.frames[next]);
      next += 1;
    }
    at = ms;
    position.value = String(ms);
    time.textContent = `${clock(ms)} / ${clock(data.duration_ms)}`;
  };
  const pause = () => {
    clearTimeout(timer);
    timer = null;
    play.textContent = 'Play';
  };
  const step = () => {
    if (next >= data.frames.length) {
      show(data.duration_ms);
      pause();
      box.dataset.state = 'ended';
      return;
    }
    const due = data.frames[next].t;
    show(due);
    const after = next < data.frames.length ? data.frames[next].t - due : 0;
    timer = setTimeout(step, Math.min(after, 2000) / Number(speed.value));
  };
  play.addEventListener('click', () => {
    if (timer) return pause();
    if (next >= data.frames.length) show(0);
    box.dataset.state = 'playing';
    play.textContent = 'Pause';
    step();
  });
  end.addEventListener('click', () => {
    pause();
    show(data.duration_ms);
    box.dataset.state = 'ended';
  });
  position.addEventListener('input', () => {
    pause();
    show(Number(position.value));
  });
  show(0);
  box.dataset.state = 'ready';
}

function status(box, text) {
  const s = box.parentElement.querySelector('[data-testid="live-status"]');
  if (s) s.textContent = text;
}

// A live terminal: the whole screen first, then what changes.
function liveTerminal(box) {
  const screen = new Screen(box);
  const source = new EventSource(box.dataset.live);
  source.addEventListener('open', () => status(box, 'Watching live.'));
  source.addEventListener('frame', (e) => screen.apply(JSON.parse(e.data)));
  source.addEventListener('end', () => {
    source.close();
    status(box, 'The session ended.');
  });
  source.addEventListener('error', () => {
    if (source.readyState === EventSource.CLOSED) status(box, 'Disconnected.');
  });
}

// A live session's statements, verdicts and results as they are recorded.
function liveEvents(list) {
  const source = new EventSource(list.dataset.liveEvents);
  const add = (cls, text) => {
    const item = el('li', cls);
    item.appendChild(el('code', '', text));
    list.appendChild(item);
  };
  source.addEventListener('open', () => status(list, 'Watching live.'));
  source.addEventListener('query', (e) => add('step', JSON.parse(e.data).event.text));
  source.addEventListener('guard', (e) => {
    const g = JSON.parse(e.data).event;
    add(`verdict ${g.action}`, `${g.action} by ${g.rule}: ${g.reason}`);
  });
  source.addEventListener('result', (e) => {
    const r = JSON.parse(e.data).event;
    const o = r.outcome;
    add('outcome', o.error ? `error ${o.error.code}: ${o.error.message}` : `${o.row_count} row(s)`);
  });
  source.addEventListener('http', (e) => {
    const h = JSON.parse(e.data).event;
    add('http', `${h.method} ${h.path} → ${h.status ?? ''}`);
  });
  source.addEventListener('end', () => {
    source.close();
    status(list, 'The session ended.');
  });
  source.addEventListener('error', () => {
    if (source.readyState === EventSource.CLOSED) status(list, 'Disconnected.');
  });
}

// The reviews inbox: reloaded when a review comes or goes, unless someone is typing.
function follow(marker) {
  const source = new EventSource(marker.dataset.follow);
  source.addEventListener('review', () => {
    const typing = [...document.querySelectorAll('input[name="reason"]')].some(
      (i) => i.value !== '' || i === document.activeElement,
    );
    if (!typing) {
      source.close();
      window.location.replace(window.location.pathname);
      return;
    }
    if (marker.childElementCount === 0) {
      const note = el('p', 'notice', 'The reviews changed. ');
      note.setAttribute('role', 'status');
      const link = el('a', '', 'Show them');
      link.href = window.location.pathname;
      note.appendChild(link);
      marker.appendChild(note);
    }
  });
}

document.addEventListener('DOMContentLoaded', () => {
  document.querySelectorAll('[data-replay]').forEach(replay);
  document.querySelectorAll('[data-live]').forEach(liveTerminal);
  document.querySelectorAll('[data-live-events]').forEach(liveEvents);
  document.querySelectorAll('[data-follow]').forEach(follow);
  document.querySelectorAll('form[data-confirm]').forEach((form) => {
    form.addEventListener('submit', (e) => {
      if (!window.confirm(form.dataset.confirm)) e.preventDefault();
    });
  });
});
