"""`GET /`: the status page for meeting staff.

Server-rendered HTML with a little JavaScript: the endpoints grouped by district, coloured by
their live state (refreshed every few seconds from /api/v1/targets), the last readiness verdict
of each, a form that runs a check for a district or group and shows the verdicts as they
come, and the firing alerts with who is on them (an Acknowledge button for the others).
Nothing is fetched from outside (no CDN): it works on a laptop in a meeting room without
internet access, and on a phone.
"""

from __future__ import annotations

import html
import unicodedata
from collections.abc import Awaitable, Callable

from aiohttp import web

from netmon import __version__
from netmon.state import StateStore, live_status
from netmon.status import room_problems

Handler = Callable[[web.Request], Awaitable[web.Response]]

STYLE = """
:root { --up: #1b7f3b; --down: #b3261e; --degraded: #b26a00; --unknown: #8a8a8e; }
* { box-sizing: border-box; }
body { font-family: system-ui, sans-serif; margin: 0; color: #1d1d1f; background: #f6f6f8; }
header { background: #1d2a3a; color: #fff; padding: .8rem 1rem; }
header h1 { font-size: 1.15rem; margin: 0; }
header p { margin: .25rem 0 0; font-size: .9rem; opacity: .9; }
main { padding: .8rem 1rem 2rem; }
form { background: #fff; border-radius: .4rem; padding: .6rem .8rem; margin-bottom: 1rem;
       display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; }
select, button, input { font-size: 1rem; padding: .35rem .5rem; }
button { background: #1d2a3a; color: #fff; border: 0; border-radius: .3rem; }
#check-summary { font-weight: 600; }
.districts { display: grid; grid-template-columns: repeat(auto-fill, minmax(17rem, 1fr));
             gap: .8rem; }
section.district { background: #fff; border-radius: .4rem; padding: .5rem .7rem; }
section.district h2 { font-size: 1rem; margin: .2rem 0 .4rem; }
section.district h2 small { font-weight: 400; color: #555; }
ul { list-style: none; margin: 0; padding: 0; }
li.endpoint, li.trouble { display: flex; align-items: center; gap: .4rem; padding: .15rem 0;
              font-size: .92rem; }
li.endpoint::before, li.trouble::before { content: ""; flex: none; width: .75rem; height: .75rem;
                      border-radius: 50%; background: var(--unknown); }
li[data-state="up"]::before { background: var(--up); }
li[data-state="down"]::before { background: var(--down); }
li[data-state="degraded"]::before { background: var(--degraded); }
li[data-state="down"] { color: var(--down); font-weight: 600; }
.verdict { margin-left: auto; font-size: .75rem; font-weight: 700; color: #fff;
           border-radius: .25rem; padding: 0 .3rem; }
li[data-verdict="GO"] .verdict { background: var(--up); }
li[data-verdict="WARN"] .verdict { background: var(--degraded); }
li[data-verdict="NO-GO"] .verdict { background: var(--down); }
#attention { background: #fff; border-left: .3rem solid var(--down); border-radius: .4rem;
             padding: .5rem .7rem; margin-bottom: 1rem; }
#attention h2, #alerts h2 { font-size: 1rem; margin: .2rem 0 .4rem; }
#alerts { background: #fff; border-left: .3rem solid var(--degraded); border-radius: .4rem;
          padding: .5rem .7rem; margin-bottom: 1rem; }
#alerts p { margin: 0 0 .4rem; font-size: .9rem; }
li.alert { display: flex; flex-wrap: wrap; align-items: center; gap: .4rem; padding: .2rem 0;
           font-size: .92rem; }
li.alert[data-severity="critical"] span { color: var(--down); font-weight: 600; }
li.alert small.ack { color: var(--up); font-weight: 600; }
li.alert button { font-size: .85rem; padding: .2rem .45rem; margin-left: auto; }
li.endpoint small.problems { color: var(--down); font-size: .78rem; }
.legend span { margin-right: .8rem; }
.legend .up { color: var(--up); } .legend .degraded { color: var(--degraded); }
.legend .down { color: var(--down); } .legend .unknown { color: var(--unknown); }
"""

SCRIPT = """
const byId = (id) => document.querySelector(`li.endpoint[data-target="${CSS.escape(id)}"]`);
function setVerdict(e) {
  const li = byId(e.target); if (!li) return;
  li.dataset.verdict = e.verdict;
  li.querySelector('.verdict').textContent = e.verdict;
  li.title = e.reasons.join('; ');
}
async function refresh() {
  try {
    const r = await fetch('/api/v1/targets'); if (!r.ok) return;
    const body = await r.json();
    for (const t of (body.targets || body)) {
      const li = byId(t.id); if (!li) continue;
      li.dataset.state = t.status || t.state;
      // What the room says is wrong with itself: "camera disconnected", "not registered".
      li.querySelector('.problems').textContent = ((t.room || {}).problems || []).join('; ');
    }
  } catch (err) { /* the next refresh tries again */ }
  summarise();
}
// What needs attention, worst first, above the districts: on a phone the districts are one long
// column and a fault in the last one would be out of sight.
const RANK = {'down': 0, 'NO-GO': 1, 'degraded': 2, 'WARN': 3};
function summarise() {
  const items = [...document.querySelectorAll('li.endpoint')];
  const count = (s) => items.filter(li => li.dataset.state === s).length;
  document.getElementById('live').textContent = `${count('up')} up, ` +
    `${count('degraded')} degraded, ${count('down')} down, ${count('unknown')} unknown`;
  const trouble = items.map(li => {
    const wrong = li.querySelector('.problems').textContent ? RANK['degraded'] : undefined;
    const ranks = [RANK[li.dataset.state], RANK[li.dataset.verdict], wrong]
      .filter(r => r !== undefined);
    return {li, rank: Math.min(...ranks)};
  }).filter(x => x.rank !== Infinity).sort((a, b) => a.rank - b.rank);
  const list = document.getElementById('attention-list');
  list.replaceChildren(...trouble.map(({li}) => {
    const row = document.createElement('li');
    row.className = 'trouble';
    row.dataset.target = li.dataset.target;
    row.dataset.state = li.dataset.state;
    row.dataset.verdict = li.dataset.verdict;
    const what = [li.dataset.state !== 'up' ? li.dataset.state : '', li.dataset.verdict,
                  li.querySelector('.problems').textContent, li.title].filter(Boolean).join(' · ');
    row.textContent = `${li.firstElementChild.textContent} (${li.dataset.district}): ${what}`;
    return row;
  }));
  document.getElementById('attention').hidden = trouble.length === 0;
}
document.getElementById('check-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const [kind, ...rest] = document.getElementById('check-scope').value.split(':');
  const summary = document.getElementById('check-summary');
  const button = document.getElementById('check-run');
  button.disabled = true;  // one check at a time from this page
  summary.textContent = 'checking…';
  const tokenField = document.getElementById('check-token');
  // A netmon with an API token wants it for checks too; the page keeps it for this tab only.
  const token = tokenField.value.trim() || sessionStorage.getItem('netmon-token') || '';
  const headers = {'Content-Type': 'application/json'};
  if (token) headers['Authorization'] = `Bearer ${token}`;
  try {
    const r = await fetch('/api/v1/checks', {method: 'POST', headers,
      body: JSON.stringify({[kind]: rest.join(':')})});
    const started = await r.json();
    if (r.status === 401) {
      sessionStorage.removeItem('netmon-token');
      tokenField.hidden = false;
      tokenField.focus();
      summary.textContent = token ? 'that token is not accepted'
        : 'this netmon needs its API token to run checks: enter it and run again';
      return;
    }
    if (r.status !== 202) { summary.textContent = started.error || `HTTP ${r.status}`; return; }
    if (token) { sessionStorage.setItem('netmon-token', token); tokenField.hidden = true; }
    for (let i = 0; i < 120; i++) {
      await new Promise(ok => setTimeout(ok, 500));
      const report = await (await fetch(started.url)).json();
      if (report.status === 'done') {
        report.endpoints.forEach(setVerdict);
        summarise();
        summary.textContent = report.summary;
        return;
      }
      if (report.status === 'failed') { summary.textContent = 'the check failed'; return; }
    }
    summary.textContent = 'no result after a minute';
  } catch (err) {
    summary.textContent = 'netmon did not answer; try again';
  } finally {
    button.disabled = false;
  }
});
// Firing alerts with who is on them; an Acknowledge button for the others (issue 18).
async function refreshAlerts() {
  try {
    const r = await fetch('/api/v1/alerts'); if (!r.ok) return;
    const firing = ((await r.json()).alerts || []).filter(a => a.state === 'firing');
    document.getElementById('alert-list').replaceChildren(...firing.map(alertRow));
    document.getElementById('alerts').hidden = firing.length === 0;
  } catch (err) { /* the next refresh tries again */ }
}
function alertRow(a) {
  const row = document.createElement('li');
  row.className = 'alert';
  row.dataset.fingerprint = a.fingerprint;
  row.dataset.severity = a.severity;
  row.dataset.acknowledged = a.acknowledged ? 'yes' : 'no';
  const text = document.createElement('span');
  text.textContent = `${a.severity}: ${a.summary}`;
  row.append(text);
  if (a.acknowledged) {
    const who = document.createElement('small');
    who.className = 'ack';
    who.textContent = `✓ ${a.acknowledged_by}` +
      (a.acknowledged_comment ? ` (${a.acknowledged_comment})` : '');
    row.append(who);
  } else {
    const button = document.createElement('button');
    button.className = 'ack-button';
    button.type = 'button';
    button.textContent = 'Đã nhận / Acknowledge';
    button.addEventListener('click', () => acknowledge(a.fingerprint, button));
    row.append(button);
  }
  return row;
}
async function acknowledge(fingerprint, button) {
  const byField = document.getElementById('ack-by');
  const note = document.getElementById('alerts-note');
  const by = byField.value.trim();
  if (!by) { note.textContent = 'enter your name first: who is on it'; byField.focus(); return; }
  localStorage.setItem('netmon-name', by);
  const tokenField = document.getElementById('check-token');
  const token = tokenField.value.trim() || sessionStorage.getItem('netmon-token') || '';
  const headers = {'Content-Type': 'application/json'};
  if (token) headers['Authorization'] = `Bearer ${token}`;
  button.disabled = true;
  try {
    const r = await fetch(`/api/v1/alerts/${encodeURIComponent(fingerprint)}/ack`,
      {method: 'POST', headers, body: JSON.stringify({by})});
    if (r.status === 401) {
      sessionStorage.removeItem('netmon-token');
      tokenField.hidden = false;
      tokenField.focus();
      note.textContent = token ? 'that token is not accepted'
        : 'this netmon needs its API token: enter it above and press again';
      return;
    }
    const body = await r.json();
    if (!r.ok) { note.textContent = body.error || `HTTP ${r.status}`; return; }
    if (token) { sessionStorage.setItem('netmon-token', token); tokenField.hidden = true; }
    note.textContent = '';
  } catch (err) {
    note.textContent = 'netmon did not answer; try again';
  } finally {
    button.disabled = false;
    refreshAlerts();
  }
}
document.getElementById('ack-by').value = localStorage.getItem('netmon-name') || '';
refresh();
refreshAlerts();
setInterval(refresh, 5000);
setInterval(refreshAlerts, 5000);
"""


def _collate(text: str) -> tuple[str, str]:
    """Vietnamese order, near enough: by the letters without their marks (Đ as D), then as
    written, so Hà Trung comes before Hoằng Hóa and Đông Sơn among the Ds."""
    bare = unicodedata.normalize("NFD", text.replace("Đ", "D").replace("đ", "d"))
    return ("".join(c for c in bare if not unicodedata.combining(c)).casefold(), text)


def status_page(
    store: StateStore,
    instance: str,
    degraded: Callable[[str], bool] = lambda target: False,
) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        rooms = [s for s in store.targets.values() if s.target.is_room]
        by_district: dict[str, list[str]] = {}
        ordered = sorted(
            rooms, key=lambda s: (_collate(s.target.district), _collate(s.target.display_name))
        )
        for state in ordered:
            target = state.target
            readiness = state.readiness
            verdict = readiness.verdict.value if readiness else ""
            reasons = "; ".join(readiness.reasons) if readiness else ""
            wrong = "; ".join(room_problems(state))
            by_district.setdefault(target.district or "—", []).append(
                f'<li class="endpoint" data-target="{html.escape(target.id)}" '
                f'data-district="{html.escape(target.district)}" '
                f'data-state="{live_status(state.reach, degraded(target.id))}" '
                f'data-verdict="{html.escape(verdict)}" title="{html.escape(reasons)}">'
                f"<span>{html.escape(target.display_name)}</span>"
                f'<small class="problems">{html.escape(wrong)}</small>'
                f'<span class="verdict">{html.escape(verdict)}</span></li>'
            )
        sections = "\n".join(
            f'<section class="district" data-district="{html.escape(name)}">'
            f"<h2>{html.escape(name)} <small>{len(items)}</small></h2><ul>{''.join(items)}</ul>"
            "</section>"
            for name, items in by_district.items()
        )
        districts = sorted({s.target.district for s in rooms if s.target.district}, key=_collate)
        groups = sorted({s.target.group for s in rooms if s.target.group}, key=_collate)
        answering, devices = store.devices_answering()
        device_line = f" · SNMP devices: {answering} of {devices} answering" if devices else ""
        options = "".join(
            f'<option value="district:{html.escape(d)}">district {html.escape(d)}</option>'
            for d in districts
        ) + "".join(
            f'<option value="group:{html.escape(g)}">group {html.escape(g)}</option>'
            for g in groups
        )
        page = f"""<!DOCTYPE html>
<html lang="vi">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>netmon · {html.escape(instance)}</title>
<link rel="icon" href="data:,">
<style>{STYLE}</style>
</head>
<body>
<header>
<h1>netmon · {html.escape(instance)}</h1>
<p><span id="endpoint-count">{len(rooms)}</span> endpoints: <span id="live"></span>
· <a style="color:#fff" href="/api/v1/alerts">alerts</a>
· <a style="color:#fff" href="/meetings">meetings</a>
· <a style="color:#fff" href="/api/v1/reports/availability?format=html">availability</a>
· <a style="color:#fff" href="/metrics">metrics</a>{html.escape(device_line)}
· netmon {html.escape(__version__)}</p>
</header>
<main>
<form id="check-form">
<label for="check-scope">Readiness check</label>
<select id="check-scope">{options}</select>
<input id="check-token" type="password" placeholder="API token" autocomplete="off" hidden>
<button id="check-run" type="submit">Run check</button>
<span id="check-summary"></span>
</form>
<p class="legend"><span class="up">● up</span><span class="degraded">● degraded</span>
<span class="down">● down</span><span class="unknown">● unknown</span>
<span>verdicts: GO / WARN / NO-GO (hover for the reasons)</span></p>
<section id="alerts" hidden><h2>Alerts</h2>
<p><label for="ack-by">Your name</label> <input id="ack-by" autocomplete="name"
placeholder="who is on it"> <span id="alerts-note"></span></p>
<ul id="alert-list"></ul></section>
<section id="attention" hidden><h2>Needs attention</h2><ul id="attention-list"></ul></section>
<div class="districts">
{sections}
</div>
</main>
<script>{SCRIPT}</script>
</body>
</html>
"""
        return web.Response(text=page, content_type="text/html")

    return handler
