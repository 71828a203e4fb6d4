// The operator page: signs in with the authorization-code flow and PKCE,
// lists workspaces live from /ui/stream, and shows one workspace with the
// actions the signed-in user's role allows. No build step: plain modules.

const PAGE_SIZE = 50;
const $ = (sel, root = document) => root.querySelector(sel);
const cfg = await (await fetch('config.json')).json();
const oidc = `${cfg.keycloak_url}/realms/${encodeURIComponent(cfg.realm)}/protocol/openid-connect`;
const redirectURI = new URL('./', location.href).href.split('?')[0];

// ---- sign-in -------------------------------------------------------------

const b64url = (bytes) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const random = (n) => b64url(crypto.getRandomValues(new Uint8Array(n)));

async function signIn() {
  const verifier = random(48);
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  const state = random(16);
  sessionStorage.setItem('pkce', JSON.stringify({ verifier, state, back: location.hash }));
  location.assign(`${oidc}/auth?` + new URLSearchParams({
    client_id: cfg.client_id, response_type: 'code', scope: 'openid', redirect_uri: redirectURI,
    state, code_challenge: b64url(new Uint8Array(digest)), code_challenge_method: 'S256',
  }));
}

// finishSignIn exchanges the code Keycloak sent back for tokens.
async function finishSignIn(params) {
  const saved = JSON.parse(sessionStorage.getItem('pkce') || 'null');
  sessionStorage.removeItem('pkce');
  if (!saved || saved.state !== params.get('state')) throw new Error('sign-in answer does not match the request; try again');
  await tokenRequest({ grant_type: 'authorization_code', code: params.get('code'), redirect_uri: redirectURI,
    client_id: cfg.client_id, code_verifier: saved.verifier });
  history.replaceState(null, '', redirectURI + (saved.back || '#/'));
}

async function tokenRequest(form) {
  const res = await fetch(`${oidc}/token`, { method: 'POST', body: new URLSearchParams(form) });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(`sign-in refused: ${body.error_description || body.error || res.status}`);
  const now = Date.now();
  sessionStorage.setItem('tokens', JSON.stringify({ access: body.access_token, refresh: body.refresh_token,
    id: body.id_token, expires: now + body.expires_in * 1000, refreshExpires: now + (body.refresh_expires_in || 0) * 1000 }));
}

const tokens = () => JSON.parse(sessionStorage.getItem('tokens') || 'null');

// accessToken renews the token shortly before it expires.
async function accessToken() {
  const t = tokens();
  if (!t) return signIn();
  if (Date.now() < t.expires - 15000) return t.access;
  if (t.refresh && Date.now() < t.refreshExpires - 5000) {
    try {
      await tokenRequest({ grant_type: 'refresh_token', refresh_token: t.refresh, client_id: cfg.client_id });
      return tokens().access;
    } catch { /* the session ended: sign in again */ }
  }
  sessionStorage.removeItem('tokens');
  return signIn();
}

function signOut() {
  const t = tokens();
  sessionStorage.removeItem('tokens');
  location.assign(`${oidc}/logout?` + new URLSearchParams({ client_id: cfg.client_id,
    post_logout_redirect_uri: redirectURI, ...(t && t.id ? { id_token_hint: t.id } : {}) }));
}

function claims() {
  const t = tokens();
  if (!t) return {};
  const part = t.access.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
  return JSON.parse(decodeURIComponent(escape(atob(part))));
}
const me = () => claims().preferred_username || '';
const isAdmin = () => ((claims().realm_access || {}).roles || []).includes(cfg.admin_role);

// ---- the API -----------------------------------------------------------

async function api(method, path, body) {
  const send = async () => fetch(path, { method, headers: { Authorization: `Bearer ${await accessToken()}`,
    ...(body ? { 'Content-Type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
  let res = await send();
  if (res.status === 401) { sessionStorage.removeItem('tokens'); res = await send(); }
  const out = res.status === 204 ? {} : await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(out.error || `${method} ${path}: ${res.status}`);
  return out;
}

// ---- the live feed -----------------------------------------------------

const listeners = new Set();
let streamOpen = false;

// stream reads /ui/stream (server-sent events, through fetch so the token
// travels in a header) and reconnects after a pause when it ends.
async function stream() {
  for (let wait = 500; ; wait = Math.min(wait * 2, 8000)) {
    try {
      const res = await fetch('stream', { headers: { Authorization: `Bearer ${await accessToken()}` } });
      if (res.ok) {
        wait = 500;
        await readEvents(res.body);
        continue; // the server ended it (it does every few minutes): back at once, with a fresh token
      }
    } catch { /* network gone: retry below */ }
    setLive(false);
    await new Promise((r) => setTimeout(r, wait));
  }
}

async function readEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let end;
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      const ev = { event: 'message', data: '' };
      for (const line of block.split('\n')) {
        const [k, ...v] = line.split(': ');
        if (k === 'event') ev.event = v.join(': ');
        if (k === 'data') ev.data += v.join(': ');
      }
      dispatch(ev.event, ev.data ? JSON.parse(ev.data) : {});
    }
  }
}

function dispatch(event, data) {
  if (event === 'ready') setLive(true);
  for (const fn of listeners) fn(event, data);
}

function setLive(on) {
  streamOpen = on;
  const el = $('#live');
  el.textContent = on ? 'live' : 'reconnecting…';
  el.classList.toggle('on', on);
}

// ---- small helpers ------------------------------------------------------

function el(tag, props = {}, ...kids) {
  const n = Object.assign(document.createElement(tag), props);
  n.append(...kids);
  return n;
}
const fmtTime = (s) => (s ? new Date(s).toLocaleString() : '—');
function ago(s) {
  const d = (Date.now() - new Date(s)) / 1000;
  if (!s || Number.isNaN(d)) return '—';
  if (d < 60) return `${Math.max(0, Math.floor(d))}s ago`;
  if (d < 3600) return `${Math.floor(d / 60)}m ago`;
  if (d < 172800) return `${Math.floor(d / 3600)}h ago`;
  return `${Math.floor(d / 86400)}d ago`;
}
function badge(status) { return el('span', { className: `badge ${status}`, textContent: status }); }

let toastTimer;
function toast(msg) {
  const t = $('#toast');
  t.textContent = msg;
  t.classList.add('show');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => t.classList.remove('show'), 5000);
}

// confirmAction asks before anything that destroys.
function confirmAction(text, ok) {
  const d = $('#confirm');
  $('#confirm-text').textContent = text;
  $('#confirm-ok').textContent = ok;
  d.returnValue = '';
  d.showModal();
  return new Promise((resolve) => d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true }));
}

async function act(fn, done) {
  try { await fn(); toast(done); } catch (e) { toast(e.message); }
}

// ---- the list -----------------------------------------------------------

function showList(query) {
  const main = $('#main');
  main.replaceChildren($('#list-view').content.cloneNode(true));
  const state = { status: query.get('status') || '', owner: query.get('owner') || '', cursors: [''], page: 0, next: null, rows: new Map() };
  const form = $('#filters');
  form.status.value = state.status;
  form.owner.value = state.owner;
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    if (form.status.value) q.set('status', form.status.value);
    if (form.owner.value.trim()) q.set('owner', form.owner.value.trim());
    location.hash = '#/?' + q;
  });
  $('#prev').addEventListener('click', () => { state.page--; load(state); });
  $('#next').addEventListener('click', () => { state.cursors[state.page + 1] = state.next; state.page++; load(state); });
  const onChange = (event, ws) => {
    if (event === 'ready' || event === 'reset') load(state);
    if (event === 'workspace') upsertRow(state, ws);
    if (event === 'removed') { state.rows.get(ws.name)?.remove(); relabel(state); }
  };
  listeners.add(onChange);
  if (streamOpen) load(state);
  return () => listeners.delete(onChange);
}

async function load(state) {
  const q = new URLSearchParams({ limit: PAGE_SIZE });
  if (state.status) q.set('status', state.status);
  if (state.owner) q.set('owner', state.owner);
  if (state.cursors[state.page]) q.set('cursor', state.cursors[state.page]);
  let page;
  try { page = await api('GET', '/workspaces?' + q); } catch (e) { toast(e.message); return; }
  state.next = page.next_cursor;
  state.rows.clear();
  const body = $('#workspaces tbody');
  if (!body) return;
  body.replaceChildren(...page.items.map((ws) => row(state, ws)));
  $('#prev').disabled = state.page === 0;
  $('#next').disabled = !state.next;
  relabel(state);
}

// relabel says which rows the page shows, after a load or a live change.
function relabel(state) {
  const n = $('#workspaces tbody')?.children.length || 0;
  const first = state.page * PAGE_SIZE + 1;
  $('#page-label').textContent = n ? `${first}–${first + n - 1}` : 'none';
  $('#list-caption').textContent = `Workspaces ${$('#page-label').textContent}${state.status ? ', ' + state.status : ''}${state.owner ? ', owner ' + state.owner : ''} (live)`;
}

function row(state, ws) {
  const link = el('a', { href: `#/ws/${encodeURIComponent(ws.name)}`, textContent: ws.name });
  const tr = el('tr', {}, el('td', {}, link), el('td', {}, badge(ws.status)), el('td', { textContent: ws.owner || '—' }),
    el('td', { textContent: String((ws.members || []).length) }), el('td', { textContent: ago(ws.updated_at), title: fmtTime(ws.updated_at) }));
  tr.dataset.name = ws.name;
  tr.dataset.status = ws.status;
  state.rows.set(ws.name, tr);
  return tr;
}

const matches = (state, ws) => (!state.status || ws.status === state.status) && (!state.owner || ws.owner === state.owner);

// upsertRow applies one change to the page shown: a row updated in place,
// one that stopped matching the filter removed, a new one inserted where
// it sorts if that is within this page.
function upsertRow(state, ws) {
  const body = $('#workspaces tbody');
  if (!body) return;
  const old = state.rows.get(ws.name);
  if (!matches(state, ws)) { old?.remove(); state.rows.delete(ws.name); relabel(state); return; }
  if (old) { old.replaceWith(row(state, ws)); return; }
  const names = [...body.children].map((tr) => tr.dataset.name);
  const after = names.findIndex((n) => n > ws.name);
  const inPage = after >= 0 ? (state.page === 0 || after > 0) : (!state.next && names.length < PAGE_SIZE);
  if (!inPage) return;
  const tr = row(state, ws);
  if (after >= 0) body.children[after].before(tr); else body.append(tr);
  relabel(state);
}

// ---- one workspace ------------------------------------------------------

function showWorkspace(name) {
  const main = $('#main');
  main.replaceChildren($('#detail-view').content.cloneNode(true));
  $('#ws-name').textContent = name;
  let pending;
  const refresh = () => { clearTimeout(pending); pending = setTimeout(() => loadWorkspace(name), 100); };
  const onChange = (event, ws) => { if (event === 'ready' || ws.name === name) refresh(); };
  listeners.add(onChange);
  wireActions(name);
  loadWorkspace(name);
  return () => listeners.delete(onChange);
}

async function loadWorkspace(name) {
  let ws;
  try { ws = await api('GET', `/workspaces/${name}`); } catch (e) { toast(e.message); return; }
  if (!$('#ws-status')) return;
  $('#ws-status').replaceWith(Object.assign(badge(ws.status), { id: 'ws-status' }));
  $('#ws-owner').textContent = ws.owner || '—';
  $('#ws-created').textContent = fmtTime(ws.created_at);
  $('#ws-updated').textContent = fmtTime(ws.updated_at);
  const failure = $('#ws-failure');
  failure.hidden = ws.status !== 'failed';
  failure.textContent = ws.status === 'failed' ? `Failed at step ${ws.failed_step || '?'}: ${ws.last_error || 'no reason given'}`
    : ws.status === 'degraded' ? `Degraded: ${ws.last_error || 'no reason given'}` : '';
  const memberError = $('#ws-member-error');
  memberError.hidden = !ws.last_member_error;
  memberError.textContent = ws.last_member_error ? `Last membership change failed: ${ws.last_member_error}` : '';
  const role = (ws.members || []).find((m) => m.username === me())?.role;
  const manage = isAdmin() || role === 'ws_admin';
  const live = !['deleting', 'deleted'].includes(ws.status);
  $('#retry').hidden = !(isAdmin() && ws.status === 'failed');
  $('#delete').hidden = !(isAdmin() && live);
  $('#rotate').hidden = !(role && ws.status === 'ready');
  $('#add-member').hidden = !(manage && ws.status === 'ready');
  renderMembers(ws, manage && ws.status === 'ready');
  loadShares(ws, role);
  loadHistory(name);
}

// loadShares shows the workspace's share links to its members; the
// section stays hidden where the API has no shares (or the caller may
// not list them).
async function loadShares(ws, role) {
  const section = $('#shares-section');
  if (!section || !role || ws.status !== 'ready') { if (section) section.hidden = true; return; }
  let page;
  try { page = await api('GET', `/workspaces/${ws.name}/shares`); } catch { section.hidden = true; return; }
  section.hidden = false;
  $('#add-share').hidden = !['ws_admin', 'ws_access'].includes(role);
  $('#shares tbody').replaceChildren(...(page.items || []).map((s) => {
    const cell = el('td');
    const mayRevoke = (s.created_by === me() || role === 'ws_admin' || isAdmin()) && (!s.state || s.state === 'active');
    if (mayRevoke) {
      const b = el('button', { type: 'button', textContent: 'Revoke', className: 'danger' });
      b.setAttribute('aria-label', `Revoke the link to ${s.path}`);
      b.addEventListener('click', async () => {
        if (await confirmAction(`Revoke the link to ${s.path}? Anyone holding it loses access at once.`, 'Revoke link')) {
          act(async () => {
            await api('DELETE', `/workspaces/${ws.name}/shares/${encodeURIComponent(s.id)}`);
            $('#new-share').hidden = true; // a link shown once may be the one just revoked
            loadShares(ws, role);
          }, 'Link revoked');
        }
      });
      cell.append(b);
    }
    return el('tr', {}, el('td', { textContent: s.path }), el('td', { textContent: s.state || 'active' }),
      el('td', { textContent: s.max_uses ? `${s.uses}/${s.max_uses}` : String(s.uses) }),
      el('td', { textContent: fmtTime(s.expires_at) }), el('td', { textContent: s.created_by || '—' }), cell);
  }));
}

function renderMembers(ws, manage) {
  $('#members tbody').replaceChildren(...(ws.members || []).map((m) => {
    const cell = el('td');
    if (manage) {
      const b = el('button', { type: 'button', textContent: 'Remove', className: 'danger' });
      b.setAttribute('aria-label', `Remove ${m.username}`);
      b.addEventListener('click', async () => {
        if (await confirmAction(`Remove ${m.username} from ${ws.name}? Their storage keys stop working at once.`, 'Remove member')) {
          act(() => api('DELETE', `/workspaces/${ws.name}/members/${encodeURIComponent(m.username)}`), `Removing ${m.username}…`);
        }
      });
      cell.append(b);
    }
    return el('tr', {}, el('td', { textContent: m.kind === 'client' && m.client_id ? `${m.client_id} (client)` : m.username }),
      el('td', { textContent: m.role }), el('td', { textContent: m.kind || 'user' }), cell);
  }));
}

async function loadHistory(name) {
  const items = [];
  let cursor = '';
  try {
    do {
      const q = new URLSearchParams({ limit: 500 });
      if (cursor) q.set('cursor', cursor);
      const page = await api('GET', `/workspaces/${name}/events?` + q);
      items.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor);
  } catch (e) { toast(e.message); return; }
  if (!$('#steps')) return;
  const steps = items.filter((i) => ['workspace.step.completed', 'workspace.step.failed'].includes(i.event.type));
  $('#steps tbody').replaceChildren(...steps.map((i) => el('tr', {}, el('td', { textContent: fmtTime(i.event.time) }),
    el('td', { textContent: i.event.data.saga }), el('td', { textContent: i.event.data.step }),
    el('td', { textContent: i.event.type.endsWith('completed') ? 'done' : `failed: ${i.event.data.error}` }))));
  $('#audit tbody').replaceChildren(...items.map((i) => el('tr', {}, el('td', { textContent: fmtTime(i.event.time) }),
    el('td', { textContent: i.event.type }), el('td', { textContent: i.event.actor || '—' }),
    el('td', { className: 'detail', textContent: JSON.stringify(i.event.data) }))));
}

function wireActions(name) {
  $('#retry').addEventListener('click', () => act(() => api('POST', `/workspaces/${name}/retry`), `Retrying ${name}…`));
  $('#delete').addEventListener('click', async () => {
    if (await confirmAction(`Delete ${name}? Its client, bucket, policies and every member's keys are removed.`, 'Delete workspace')) {
      act(() => api('DELETE', `/workspaces/${name}`), `Deleting ${name}…`);
    }
  });
  $('#rotate').addEventListener('click', async () => {
    if (await confirmAction(`Replace your storage keys for ${name}? The current pair stops working at once.`, 'Rotate keys')) {
      act(() => api('POST', `/workspaces/${name}/credentials/rotate`, { grace_seconds: 0 }), 'Keys rotated');
    }
  });
  $('#add-share').addEventListener('submit', (e) => {
    e.preventDefault();
    const f = e.target;
    const body = { path: f.path.value.trim(), expires_in: Number(f.expires.value) };
    if (f.max_uses.value) body.max_uses = Number(f.max_uses.value);
    act(async () => {
      const share = await api('POST', `/workspaces/${name}/shares`, body);
      f.reset();
      $('#new-share').hidden = false;
      $('#new-share-url').value = share.url;
      $('#new-share-url').focus();
      $('#new-share-url').select();
      loadWorkspace(name);
    }, `Link to ${body.path} created`);
  });
  $('#add-member').addEventListener('submit', (e) => {
    e.preventDefault();
    const f = e.target;
    const body = { username: f.username.value.trim(), role: f.role.value };
    act(async () => { await api('POST', `/workspaces/${name}/members`, body); f.reset(); }, `Adding ${body.username}…`);
  });
}

// ---- routing ------------------------------------------------------------

let leave = () => {};
function route() {
  leave();
  const [path, query] = location.hash.replace(/^#/, '').split('?');
  const m = path.match(/^\/ws\/(.+)$/);
  leave = m ? showWorkspace(decodeURIComponent(m[1])) : showList(new URLSearchParams(query || ''));
  $('#main h1')?.focus();
}

async function start() {
  const params = new URLSearchParams(location.search);
  if (params.get('error')) throw new Error(`sign-in failed: ${params.get('error_description') || params.get('error')}`);
  if (params.get('code')) await finishSignIn(params);
  if (!tokens()) return signIn();
  $('#who').textContent = `${me()}${isAdmin() ? ' (platform admin)' : ''}`;
  const out = $('#signout');
  out.hidden = false;
  out.addEventListener('click', signOut);
  window.addEventListener('hashchange', route);
  route();
  stream();
}

start().catch((e) => { $('#main').replaceChildren(el('p', { className: 'failure', role: 'alert', textContent: e.message })); });
