// The demo site's page: runs navigator.credentials.create()/get() with the
// options from the server and sends the responses back to be verified there.
// window.lp.register(user) and window.lp.signIn(user|null) resolve to a result
// object (never reject): {ok, ceremony, server?, error?: {name, message}, ms}.
"use strict";

const b64u = {
  enc(buf) {
    let s = "";
    for (const b of new Uint8Array(buf)) s += String.fromCharCode(b);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  },
  dec(str) {
    const s = atob(str.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((str.length + 3) % 4));
    return Uint8Array.from(s, (c) => c.charCodeAt(0)).buffer;
  },
};

// JSON options -> WebAuthn options (the browser's parser when it has one).
function creationOptions(json) {
  if (PublicKeyCredential.parseCreationOptionsFromJSON) return PublicKeyCredential.parseCreationOptionsFromJSON(json);
  return { ...json, challenge: b64u.dec(json.challenge), user: { ...json.user, id: b64u.dec(json.user.id) },
    excludeCredentials: (json.excludeCredentials || []).map((c) => ({ ...c, id: b64u.dec(c.id) })) };
}
function requestOptions(json) {
  if (PublicKeyCredential.parseRequestOptionsFromJSON) return PublicKeyCredential.parseRequestOptionsFromJSON(json);
  return { ...json, challenge: b64u.dec(json.challenge),
    allowCredentials: (json.allowCredentials || []).map((c) => ({ ...c, id: b64u.dec(c.id) })) };
}
function credentialJSON(c) {
  if (c.toJSON) return c.toJSON();
  const r = c.response, out = { id: c.id, rawId: b64u.enc(c.rawId), type: c.type,
    clientExtensionResults: c.getClientExtensionResults(), authenticatorAttachment: c.authenticatorAttachment };
  out.response = r.attestationObject
    ? { clientDataJSON: b64u.enc(r.clientDataJSON), attestationObject: b64u.enc(r.attestationObject),
        transports: r.getTransports ? r.getTransports() : [] }
    : { clientDataJSON: b64u.enc(r.clientDataJSON), authenticatorData: b64u.enc(r.authenticatorData),
        signature: b64u.enc(r.signature), userHandle: r.userHandle ? b64u.enc(r.userHandle) : null };
  return out;
}

async function api(path, body) {
  const r = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const j = await r.json();
  if (!r.ok) throw Object.assign(new Error(j.error || r.statusText), { name: "ServerRefused" });
  return j;
}

async function ceremony(kind, username, timeoutMs) {
  const t0 = performance.now();
  const result = { ceremony: kind, username: username || null, ok: false };
  try {
    const begin = await api(`/api/${kind}/begin`, { username });
    // Every call carries its own abort signal: browsers may ignore the
    // options' timeout (Chromium waits 180 s, then for a dialog).
    const signal = AbortSignal.timeout(timeoutMs || 60000);
    const cred = kind === "register"
      ? await navigator.credentials.create({ publicKey: creationOptions(begin.publicKey), signal })
      : await navigator.credentials.get({ publicKey: requestOptions(begin.publicKey), signal });
    result.server = await api(`/api/${kind}/finish`, { ceremony: begin.ceremony, credential: credentialJSON(cred) });
    result.ok = true;
  } catch (e) {
    result.error = { name: e.name, message: String(e.message || e) };
  }
  result.ms = Math.round(performance.now() - t0);
  show(result);
  await refresh();
  return result;
}

const yn = (v) => `<span class="${v ? "yes" : "no"}">${v ? 1 : 0}</span>`;
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);

function show(r) {
  const el = document.getElementById("last");
  el.className = r.ok ? "ok" : "err";
  const title = `${r.ceremony === "register" ? "Registration" : "Sign-in"}` +
    (r.ceremony === "authenticate" ? (r.username ? ` with allowCredentials for ${esc(r.username)}` : " (username-less)") : ` of ${esc(r.username)}`);
  if (!r.ok) {
    el.innerHTML = `<b>${title}: failed</b> after ${r.ms} ms — <code>${esc(r.error.name)}</code>: ${esc(r.error.message)}`;
    return;
  }
  const s = r.server, f = s.flags;
  el.innerHTML = `<b>${title}: verified by the server</b> in ${r.ms} ms — account <b>${esc(s.user)}</b><br>` +
    `flags UP ${yn(f.UP)} · UV ${yn(f.UV)} · BE ${yn(f.BE)} · BS ${yn(f.BS)} · ` +
    `AAGUID <code>${esc(s.aaguid)}</code> · format <code>${esc(s.fmt)}</code>` +
    (s.attestation_type ? ` (${esc(s.attestation_type)} attestation)` : "") +
    ` · sign count ${s.sign_count}` + (s.previous_sign_count !== undefined ? ` (was ${s.previous_sign_count})` : "") +
    `<br>credential <code>${esc(s.credential_id)}</code>`;
}

async function refresh() {
  const st = await (await fetch("/api/state")).json();
  document.getElementById("rpid").textContent = st.rp_id;
  document.getElementById("origin").textContent = st.origin;
  document.querySelector("#creds tbody").innerHTML = st.credentials.map((c) => `<tr>
    <td>${esc(c.user)}</td><td><code>${esc(c.id.slice(0, 22))}…</code></td><td><code>${esc(c.aaguid)}</code></td>
    <td>${esc(c.fmt)}</td><td>${esc(c.attestation_type)}</td><td>${yn(c.flags_at_registration.UV)}</td>
    <td>${yn(c.flags_at_registration.BE)}</td><td>${yn(c.flags_at_registration.BS)}</td><td>${c.sign_count}</td>
    <td>${esc(c.created)}</td><td>${esc(c.last_used || "never")}</td></tr>`).join("");
}

const val = () => document.getElementById("username").value;
window.lp = {
  register: (username, timeoutMs) => ceremony("register", username, timeoutMs),
  signIn: (username, timeoutMs) => ceremony("authenticate", username, timeoutMs),
  refresh,
};
refresh();
