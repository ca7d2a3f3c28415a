// Passkey glue for Ladder's pages: asks the server for WebAuthn options, runs the browser ceremony,
// and sends the result back. No framework; binary fields travel as base64url.
(function () {
  "use strict";

  function toBytes(b64url) {
    var b64 = b64url.replace(/-/g, "+").replace(/_/g, "/");
    var bin = atob(b64 + "===".slice((b64.length + 3) % 4));
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }

  function toB64url(buffer) {
    var bytes = new Uint8Array(buffer), bin = "";
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function creationOptions(o) {
    var pk = o.publicKey;
    pk.challenge = toBytes(pk.challenge);
    pk.user.id = toBytes(pk.user.id);
    (pk.excludeCredentials || []).forEach(function (c) { c.id = toBytes(c.id); });
    return { publicKey: pk };
  }

  function requestOptions(o) {
    var pk = o.publicKey;
    pk.challenge = toBytes(pk.challenge);
    (pk.allowCredentials || []).forEach(function (c) { c.id = toBytes(c.id); });
    // A button press is an explicit request: show the browser's passkey dialog, not autofill.
    return { publicKey: pk };
  }

  function credentialJson(cred) {
    var r = cred.response, response = { clientDataJSON: toB64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toB64url(r.attestationObject);
      if (r.getTransports) response.transports = r.getTransports();
    } else {
      response.authenticatorData = toB64url(r.authenticatorData);
      response.signature = toB64url(r.signature);
      if (r.userHandle) response.userHandle = toB64url(r.userHandle);
    }
    return {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response: response,
      extensions: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {}
    };
  }

  function post(url, csrf, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", "x-csrf-token": csrf },
      body: JSON.stringify(body || {})
    }).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (json) {
        if (!resp.ok) throw new Error(json.error_description || "Something went wrong. Try again.");
        return json;
      });
    });
  }

  function explain(err) {
    if (err && err.name === "NotAllowedError") return "The passkey request was cancelled or timed out. Try again when you are ready.";
    if (err && err.name === "InvalidStateError") return "This device already holds a passkey for your account.";
    return (err && err.message) || "Something went wrong. Try again.";
  }

  function setup(box) {
    var button = box.querySelector("[data-passkey-start]");
    var status = box.querySelector(".passkey-status");
    var say = function (text) { status.textContent = text; status.hidden = !text; };
    if (!window.PublicKeyCredential || !navigator.credentials) {
      button.disabled = true;
      say("This browser cannot use passkeys. Use another way to continue, or try an up-to-date browser.");
      return;
    }
    var base = box.getAttribute("data-base"), csrf = box.getAttribute("data-csrf");
    var registering = box.getAttribute("data-passkey") === "register";
    button.addEventListener("click", function () {
      button.disabled = true;
      say("Waiting for your passkey…");
      var username = document.getElementById("username");
      var nameField = box.querySelector("input[name=name]");
      var start = registering
        ? post(base + "/passkey/register/options", csrf)
        : post(base + "/passkey/options", csrf, { username: username ? username.value : "" });
      start
        .then(function (answer) {
          var ceremony = registering
            ? navigator.credentials.create(creationOptions(answer.options))
            : navigator.credentials.get(requestOptions(answer.options));
          return ceremony.then(function (cred) {
            var body = { challenge_id: answer.challenge_id, credential: credentialJson(cred) };
            if (nameField) body.name = nameField.value;
            return post(base + (registering ? "/passkey/register" : "/passkey"), csrf, body);
          });
        })
        .then(function (done) { say("Done. Continuing…"); window.location.assign(done.location); })
        .catch(function (err) { say(explain(err)); button.disabled = false; });
    });
  }

  document.querySelectorAll("[data-passkey]").forEach(setup);
})();
