// Passkeys in the inbox: enrolment (navigator.credentials.create) and step-up votes
// (navigator.credentials.get). The server's options arrive as WebAuthn JSON (base64url
// buffers); answers go back as JSON with the session's CSRF token in X-CSRF-Token.
(function () {
  "use strict";
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  const statusEl = document.getElementById("passkey-status");

  function say(text, ok) {
    if (!statusEl) return;
    statusEl.textContent = text;
    statusEl.className = "status " + (ok ? "status-ok" : "status-error");
  }
  function fromB64u(text) {
    const b64 = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
    const raw = atob(b64);
    const out = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out.buffer;
  }
  function toB64u(buffer) {
    if (!buffer) return null;
    const bytes = new Uint8Array(buffer);
    let raw = "";
    for (let i = 0; i < bytes.length; i++) raw += String.fromCharCode(bytes[i]);
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function creationOptions(o) {
    o.challenge = fromB64u(o.challenge);
    o.user.id = fromB64u(o.user.id);
    (o.excludeCredentials || []).forEach((c) => { c.id = fromB64u(c.id); });
    return o;
  }
  function requestOptions(o) {
    o.challenge = fromB64u(o.challenge);
    (o.allowCredentials || []).forEach((c) => { c.id = fromB64u(c.id); });
    return o;
  }
  function credentialJSON(cred) {
    const r = cred.response;
    const response = { clientDataJSON: toB64u(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toB64u(r.attestationObject);
      response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
    } else {
      response.authenticatorData = toB64u(r.authenticatorData);
      response.signature = toB64u(r.signature);
      response.userHandle = toB64u(r.userHandle);
    }
    return { id: cred.id, rawId: toB64u(cred.rawId), type: cred.type, response: response,
             authenticatorAttachment: cred.authenticatorAttachment || null,
             clientExtensionResults: cred.getClientExtensionResults() };
  }
  async function post(url, body) {
    const resp = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
    let data = {};
    try { data = await resp.json(); } catch (e) { data = { message: await resp.text() }; }
    if (!resp.ok || !data.ok) {
      const err = new Error(data.message || ("Refused (" + resp.status + ")."));
      err.data = data;
      throw err;
    }
    return data;
  }
  function unsupported() {
    if (window.PublicKeyCredential && navigator.credentials) return false;
    say("This browser cannot use passkeys here (it needs WebAuthn over https or localhost).");
    return true;
  }
  function cancelled(err) {
    return err && (err.name === "NotAllowedError" || err.name === "AbortError");
  }

  const enrolForm = document.getElementById("enrol-form");
  if (enrolForm) {
    enrolForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (unsupported()) return;
      const button = enrolForm.querySelector("button");
      button.disabled = true;
      say("Follow your browser's prompt to create the passkey…", true);
      try {
        const start = await post("/inbox/passkeys/options", {});
        let confirmation = null;
        if (start.confirm) {
          // Adding another passkey: one you already have confirms it first.
          say("First confirm with a passkey you already have…", true);
          const proof = await navigator.credentials.get({ publicKey: requestOptions(start.confirm) });
          confirmation = credentialJSON(proof);
          say("Now create the new passkey…", true);
        }
        const cred = await navigator.credentials.create({ publicKey: creationOptions(start.publicKey) });
        await post("/inbox/passkeys/register", {
          ceremony: start.ceremony, credential: credentialJSON(cred), confirmation: confirmation,
          name: enrolForm.querySelector('input[name="name"]').value,
        });
        const next = enrolForm.dataset.next;
        window.location.assign(next || "/inbox/passkeys");
      } catch (err) {
        say(cancelled(err) ? "The passkey prompt was cancelled; nothing was added." : err.message);
        button.disabled = false;
      }
    });
  }

  const stepForm = document.getElementById("step-up-form");
  if (stepForm) {
    stepForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (unsupported()) return;
      const rid = stepForm.dataset.requestId;
      const choice = stepForm.dataset.choice;
      const comment = stepForm.querySelector('textarea[name="comment"]');
      const base = "/inbox/r/" + encodeURIComponent(rid).replace(/%7E/gi, "~") + "/step-up";
      const button = stepForm.querySelector("button");
      button.disabled = true;
      say("Confirm with your passkey…", true);
      try {
        const start = await post(base + "/options", { choice: choice });
        const cred = await navigator.credentials.get({ publicKey: requestOptions(start.publicKey) });
        const done = await post(base, {
          choice: choice, comment: comment ? comment.value : "", credential: credentialJSON(cred),
        });
        say(done.message, true);
        window.location.assign(done.next);
      } catch (err) {
        if (err.data && err.data.enrol) {
          window.location.assign(err.data.enrol);
          return;
        }
        say(cancelled(err) ? "The passkey prompt was cancelled; your vote was not sent." : err.message);
        button.disabled = false;
      }
    });
  }
})();
