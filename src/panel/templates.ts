// The panel's pages as eta templates (kept in the program, not in files beside it, so the compiled CLI
// carries them). Every value is escaped by eta (`<%= %>`); `<%~ %>` is used only for markup we build
// ourselves (the charts). Every action is a plain HTML form: the panel works without JavaScript.

export const LAYOUT = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title><%= it.title %> · <%= it.node %> · sourcemesh</title>
<link rel="stylesheet" href="/panel.css">
</head><body>
<header><a class="brand" href="/">sourcemesh <span><%= it.node %></span></a>
<% if (it.loggedIn) { %><nav>
<a href="/"<%~ it.page === 'overview' ? ' class="on"' : '' %>>Overview</a>
<% for (const s of it.nav) { %><a href="/services/<%= s.name %>"<%~ it.page === s.name ? ' class="on"' : '' %>><%= s.title %></a><% } %>
<a href="/mirror"<%~ it.page === 'mirror' ? ' class="on"' : '' %>>Mirror</a>
<a href="/trust"<%~ it.page === 'trust' ? ' class="on"' : '' %>>Log &amp; witness</a>
</nav>
<form method="post" action="/logout" class="logout"><input type="hidden" name="csrf" value="<%= it.csrf %>"><button>Log out</button></form><% } %>
</header>
<main>
<% if (it.flash) { %><p class="flash <%= it.flash.kind %>" role="status"><%= it.flash.text %></p><% } %>
<%~ it.body %>
</main>
<% if (it.loggedIn) { %><script src="/live.js" defer></script><% } %>
</body></html>`;

export const LOGIN = `<section class="card narrow">
<h1>Log in</h1>
<p>The panel token was printed once by <code>sourcemesh node init</code>.</p>
<form method="post" action="/login">
<label for="token">Panel token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button class="primary">Log in</button>
</form></section>`;

const SERVICE_ROW = `<tr data-service="<%= s.name %>">
<td><a href="/services/<%= s.name %>"><%= s.title %></a></td>
<td><span class="badge <%= s.state %>" data-state><%= s.state %></span></td>
<td data-url><%= s.url ?? '' %></td>
<td><form method="post" action="/services/<%= s.name %>"><input type="hidden" name="csrf" value="<%= it.csrf %>">
<% if (s.enabled) { %><button name="action" value="off">Switch off</button><% } else { %><button name="action" value="on" class="primary">Switch on</button><% } %>
</form></td></tr>`;

export const OVERVIEW = `<h1>Overview</h1>
<section class="card"><h2>Services</h2>
<p class="help">Every service is off until switched on here or in node.json. Each one is a process of its own; switching one never touches the others.</p>
<table class="services"><thead><tr><th>Service</th><th>State</th><th>Listening</th><th></th></tr></thead><tbody>
<% for (const s of it.services) { %>${SERVICE_ROW}<% } %>
</tbody></table></section>
<div class="grid">
<section class="card"><h2>Mirror</h2>
<dl><dt>Files</dt><dd><%= it.mirror.files %></dd><dt>Bytes</dt><dd><%= it.mirror.bytesText %></dd>
<dt>Last sync</dt><dd><%= it.mirror.lastSyncText %></dd><dt>Quarantined</dt><dd><%= it.mirror.quarantined.length %></dd></dl>
<%~ it.diskChart %></section>
<section class="card"><h2>Log &amp; witness</h2>
<dl><dt>Log entries</dt><dd><%= it.log.size ?? '—' %></dd><dt>Checkpoint signatures</dt><dd><%= it.log.signatures ?? '—' %></dd>
<dt>Logs witnessed</dt><dd><%= it.witness.logs.length %></dd></dl></section>
</div>`;

export const SERVICE = `<h1><%= it.service.title %> <span class="badge <%= it.service.state %>" data-state><%= it.service.state %></span></h1>
<section class="card"><h2>What it does</h2><p><%~ it.md(it.service.help) %></p>
<h3>What it exposes</h3><p><%= it.service.exposes %></p>
<% if (it.service.url) { %><p>Listening at <a class="listening" href="<%= it.service.url %>"><%= it.service.url %></a></p><% } %>
<form method="post" action="/services/<%= it.service.name %>"><input type="hidden" name="csrf" value="<%= it.csrf %>">
<% if (it.service.enabled) { %><button name="action" value="off">Switch off</button><% } else { %><button name="action" value="on" class="primary">Switch on</button><% } %>
</form></section>
<section class="card"><h2>Settings</h2>
<form method="post" action="/services/<%= it.service.name %>" class="settings"><input type="hidden" name="csrf" value="<%= it.csrf %>">
<% for (const f of it.fields) { %><div class="field<%= f.error ? ' error' : '' %>">
<label for="f-<%= f.key %>"><%= f.key %></label>
<% if (f.input === 'select') { %><select id="f-<%= f.key %>" name="<%= f.key %>"><% for (const o of f.options) { %><option<%~ o === f.value ? ' selected' : '' %>><%= o %></option><% } %></select>
<% } else if (f.input === 'checkbox') { %><input type="checkbox" id="f-<%= f.key %>" name="<%= f.key %>" value="true"<%~ f.value === 'true' ? ' checked' : '' %>>
<% } else if (f.input === 'textarea') { %><textarea id="f-<%= f.key %>" name="<%= f.key %>" rows="3"><%= f.value %></textarea>
<% } else { %><input id="f-<%= f.key %>" name="<%= f.key %>" value="<%= f.value %>" inputmode="<%= f.input === 'number' ? 'numeric' : 'text' %>"><% } %>
<p class="help"><%~ it.md(f.help) %> <span class="kind"><%= f.kind %>; default <%= f.default %></span></p></div>
<% } %><button name="action" value="save" class="primary">Save</button></form></section>
<% if (it.service.recent.length) { %><section class="card"><h2>Last lines</h2><pre class="lines"><%= it.service.recent.join(String.fromCharCode(10)) %></pre></section><% } %>`;

export const MIRROR = `<h1>Mirror</h1>
<div class="grid">
<section class="card"><h2>Content</h2><dl>
<dt>Root</dt><dd><code><%= it.mirror.root %></code></dd>
<dt>Files</dt><dd><%= it.mirror.files %></dd><dt>Bytes</dt><dd><%= it.mirror.bytesText %></dd>
<dt>Inventory signed</dt><dd><%= it.mirror.generated ?? 'not yet' %></dd>
<dt>Disk cap</dt><dd><%= it.mirror.capText %></dd>
<dt>Last sync</dt><dd><%= it.mirror.lastSyncText %></dd></dl>
<% if (it.mirror.error) { %><p class="flash error"><%= it.mirror.error %></p><% } %>
<%~ it.diskChart %></section>
<section class="card"><h2>Syncs</h2><%~ it.syncChart %>
<table><thead><tr><th>When</th><th>Added</th><th>Unchanged</th><th>Quarantined</th><th>Failed</th><th>Seconds</th></tr></thead><tbody>
<% for (const s of it.syncs) { %><tr><td><%= s.when %></td><td><%= s.added %> (<%= s.addedText %>)</td><td><%= s.unchanged %></td><td><%= s.quarantined %></td><td><%= s.failed %></td><td><%= s.seconds.toFixed(1) %></td></tr><% } %>
</tbody></table></section></div>
<section class="card"><h2>Quarantine</h2>
<% if (it.mirror.quarantined.length === 0) { %><p>Nothing: every published file still hashes to its pinned sha256.</p><% } else { %>
<p class="help">Files that stopped matching their pinned sha256, moved out of the served tree.</p><ul><% for (const q of it.mirror.quarantined) { %><li><code><%= q %></code></li><% } %></ul><% } %></section>
<section class="card"><h2>Mirror reputation</h2><p class="help">What <code>sourcemesh mirrors status</code> prints for the store of this mirror.</p>
<table><thead><tr><th>Mirror</th><th>Files</th><th>Bytes</th><th>Rate</th><th>Failures</th><th>Lies</th><th>Last seen</th></tr></thead><tbody>
<% for (const r of it.reputation) { %><tr><td><%= r.mirror %></td><td><%= r.files %></td><td><%= r.bytes %></td><td><%= r.rate %></td><td><%= r.failures %></td><td><%= r.lies %></td><td><%= r.lastSeen %></td></tr><% } %>
<% if (it.reputation.length === 0) { %><tr><td colspan="7">No mirror used yet.</td></tr><% } %>
</tbody></table></section>`;

export const TRUST = `<h1>Log &amp; witness</h1>
<div class="grid">
<section class="card"><h2>Transparency log</h2><dl>
<dt>Directory</dt><dd><code><%= it.log.root %></code></dd>
<dt>Origin</dt><dd><%= it.log.origin ?? '—' %></dd>
<dt>Entries</dt><dd><%= it.log.size ?? 'no checkpoint yet' %></dd>
<dt>Latest checkpoint</dt><dd><%= it.log.signatures === undefined ? '—' : it.log.signatures > 1 ? 'cosigned by ' + (it.log.signatures - 1) + ' witness(es)' : 'signed by the log only' %></dd></dl>
<% if (it.log.error) { %><p class="flash error"><%= it.log.error %></p><% } %></section>
<section class="card"><h2>Witness</h2>
<table><thead><tr><th>Log</th><th>Latest cosigned size</th></tr></thead><tbody>
<% for (const l of it.witness.logs) { %><tr><td><%= l.origin %></td><td><%= l.size ?? 'none yet' %></td></tr><% } %>
<% if (it.witness.logs.length === 0) { %><tr><td colspan="2">No log to witness.</td></tr><% } %>
</tbody></table><% if (it.witness.error) { %><p class="flash error"><%= it.witness.error %></p><% } %></section></div>`;

export const CSS = `:root{--bg:#f6f7f9;--fg:#1d2330;--muted:#5d6575;--card:#fff;--line:#dde1e8;--accent:#1f6feb;--ok:#1a7f37;--warn:#9a6700;--bad:#cf222e}
*{box-sizing:border-box}body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;background:var(--bg);color:var(--fg)}
header{display:flex;align-items:center;gap:24px;padding:12px 28px;background:#18202e;color:#fff;flex-wrap:wrap}
header a{color:#c9d1e0;text-decoration:none}.brand{font-weight:700;color:#fff;font-size:17px}.brand span{font-weight:400;color:#8fa3c4;margin-left:6px}
nav{display:flex;gap:4px;flex-wrap:wrap}nav a{padding:6px 12px;border-radius:6px}nav a.on,nav a:hover{background:#2b3750;color:#fff}
.logout{margin-left:auto}.logout button{background:transparent;color:#c9d1e0;border-color:#4a5670}
main{max-width:1100px;margin:0 auto;padding:24px 28px}h1{font-size:24px;margin:0 0 16px}h2{font-size:17px;margin:0 0 10px}h3{font-size:15px;margin:14px 0 4px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:18px 20px;margin-bottom:18px}.narrow{max-width:420px;margin:40px auto}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:18px}.grid .card{margin-bottom:0}.grid{margin-bottom:18px}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:7px 8px;border-bottom:1px solid var(--line);vertical-align:middle}th{font-size:13px;color:var(--muted);font-weight:600}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 18px;margin:0 0 12px}dt{color:var(--muted)}dd{margin:0;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:1px 10px;border-radius:999px;font-size:13px;font-weight:600;background:#eaeef2;color:var(--muted);vertical-align:middle}
.badge.running{background:#dafbe1;color:var(--ok)}.badge.starting,.badge.stopping{background:#fff8c5;color:var(--warn)}.badge.backoff{background:#ffebe9;color:var(--bad)}
button{font:inherit;padding:6px 14px;border-radius:6px;border:1px solid var(--line);background:#f3f4f6;cursor:pointer}button.primary{background:var(--accent);border-color:var(--accent);color:#fff}
input,select,textarea{font:inherit;padding:6px 9px;border:1px solid #c4cad4;border-radius:6px;width:100%;max-width:520px}input[type=checkbox]{width:auto;padding:0;margin:2px 0}label{font-weight:600;display:block;margin-bottom:3px;font-family:ui-monospace,monospace;font-size:14px}
.field{margin-bottom:14px}.field.error input{border-color:var(--bad)}.help{color:var(--muted);margin:4px 0 0;font-size:14px}.kind{display:block;font-size:12px;color:#8a93a3}
.flash{padding:10px 14px;border-radius:8px;background:#ddf4ff;border:1px solid #b6e3ff}.flash.error{background:#ffebe9;border-color:#ffcecb;color:#82071e}
pre.lines{background:#0f1520;color:#d6deeb;padding:12px;border-radius:8px;overflow:auto;font-size:12px;max-height:320px}
code{font-family:ui-monospace,monospace;font-size:13px}svg.chart{width:100%;height:auto;display:block;margin-top:8px}svg.chart text{font:11px system-ui,sans-serif;fill:var(--muted)}
`;

// Live updates: the state badges and addresses follow /api/status every few seconds. Without script,
// a reload shows the same.
export const LIVE_JS = `(() => {
  const tick = async () => {
    try {
      const r = await fetch('/api/services', { credentials: 'same-origin', headers: { accept: 'application/json' } });
      if (!r.ok) return;
      for (const s of await r.json()) {
        for (const el of document.querySelectorAll('[data-service="' + s.name + '"] [data-state], body[data-page="' + s.name + '"] h1 [data-state]')) { el.textContent = s.state; el.className = 'badge ' + s.state; }
        for (const el of document.querySelectorAll('[data-service="' + s.name + '"] [data-url]')) el.textContent = s.url || '';
      }
    } catch {}
  };
  setInterval(tick, 3000);
})();
`;
