// Passkeys (WebAuthn) on the sign-in and security pages. Progressive enhancement only: the
// forms marked `data-passkey-signin` and `data-passkey-register` stay hidden unless this
// browser can use passkeys. The ceremonies call the JSON endpoints of
// crates/web/src/pages/passkey.rs, sending the page's CSRF token in `X-CSRF-Token`.
// Binary fields travel as base64url without padding. No third-party code.
(function () {
  "use strict";

  function supported() {
    return !!(
      window.PublicKeyCredential &&
      navigator.credentials &&
      typeof navigator.credentials.create === "function" &&
      window.fetch &&
      window.Promise
    );
  }

  // --- base64url <-> ArrayBuffer -------------------------------------------------------------

  function fromBase64url(text) {
    var b64 = String(text).replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) b64 += "=";
    var bin = window.atob(b64);
    var bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    if (!buffer) return null;
    var bytes = new Uint8Array(buffer);
    var bin = "";
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return window.btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // --- The server's options -> what navigator.credentials takes ----------------------------------

  function descriptors(list) {
    return (list || []).map(function (d) {
      var copy = { type: d.type, id: fromBase64url(d.id) };
      if (d.transports) copy.transports = d.transports;
      return copy;
    });
  }

  function creationOptions(options) {
    var pk = Object.assign({}, options.publicKey);
    pk.challenge = fromBase64url(pk.challenge);
    pk.user = Object.assign({}, pk.user, { id: fromBase64url(pk.user.id) });
    if (pk.excludeCredentials) pk.excludeCredentials = descriptors(pk.excludeCredentials);
    return { publicKey: pk };
  }

  function requestOptions(options) {
    var pk = Object.assign({}, options.publicKey);
    pk.challenge = fromBase64url(pk.challenge);
    if (pk.allowCredentials) pk.allowCredentials = descriptors(pk.allowCredentials);
    return { publicKey: pk };
  }

  // --- The browser's answers -> JSON for the server ---------------------------------------------

  function registrationJson(cred) {
    var r = cred.response;
    var response = {
      attestationObject: toBase64url(r.attestationObject),
      clientDataJSON: toBase64url(r.clientDataJSON)
    };
    if (typeof r.getTransports === "function") response.transports = r.getTransports();
    return {
      id: cred.id,
      rawId: toBase64url(cred.rawId),
      type: cred.type,
      response: response,
      extensions: {}
    };
  }

  function assertionJson(cred) {
    var r = cred.response;
    return {
      id: cred.id,
      rawId: toBase64url(cred.rawId),
      type: cred.type,
      response: {
        authenticatorData: toBase64url(r.authenticatorData),
        clientDataJSON: toBase64url(r.clientDataJSON),
        signature: toBase64url(r.signature),
        userHandle: toBase64url(r.userHandle)
      },
      extensions: {}
    };
  }

  // --- Talking to the server ---------------------------------------------------------------------

  function post(url, csrf, body) {
    return window
      .fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: {
          "Content-Type": "application/json",
          Accept: "application/json",
          "X-CSRF-Token": csrf
        },
        body: JSON.stringify(body)
      })
      .then(function (res) {
        return res
          .json()
          .catch(function () {
            return null;
          })
          .then(function (data) {
            if (res.ok && data) return data;
            var err = new Error("the server refused (" + res.status + ")");
            err.serverMessage = data && data.error ? data.error.message : null;
            throw err;
          });
      });
  }

  // --- One form: a button, a message, and a ceremony behind it ------------------------------------

  function wire(form, ceremony) {
    var button = form.querySelector("button[type=submit]");
    var box = form.querySelector("[data-passkey-message]");
    var text = box ? box.querySelector("p") : null;
    var csrfField = form.querySelector("input[name=csrf]");
    var label = button ? button.textContent : "";
    var busy = false;

    function say(message) {
      if (!box || !text) return;
      text.textContent = message || "";
      box.hidden = !message;
    }

    function messageFor(err) {
      if (err && err.serverMessage) return err.serverMessage;
      var name = err && err.name;
      // Cancelled, timed out, or no passkey chosen: the browser does not say which.
      if (name === "NotAllowedError" || name === "AbortError") {
        return form.getAttribute("data-msg-cancelled");
      }
      if (name === "InvalidStateError" && form.hasAttribute("data-msg-exists")) {
        return form.getAttribute("data-msg-exists");
      }
      return form.getAttribute("data-msg-failed");
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (busy) return;
      busy = true;
      say("");
      if (button) {
        button.disabled = true;
        button.setAttribute("aria-busy", "true");
        button.textContent = form.getAttribute("data-msg-working") || label;
      }
      ceremony(form, csrfField ? csrfField.value : "")
        .then(function (redirect) {
          if (typeof redirect !== "string" || redirect.charAt(0) !== "/") {
            throw new Error("no page to go to");
          }
          window.location.assign(redirect);
        })
        .catch(function (err) {
          busy = false;
          // app.js keeps a form from being sent twice; this one may be tried again.
          form.removeAttribute("data-sent");
          if (button) {
            button.disabled = false;
            button.removeAttribute("aria-busy");
            button.textContent = label;
          }
          say(messageFor(err));
        });
    });

    form.hidden = false;
  }

  function register(form, csrf) {
    return post("/me/passkeys/start", csrf, {})
      .then(function (started) {
        return navigator.credentials
          .create(creationOptions(started.options))
          .then(function (cred) {
            return post("/me/passkeys/finish", csrf, {
              ceremonyId: started.ceremonyId,
              credential: registrationJson(cred)
            });
          });
      })
      .then(function (done) {
        return done.redirect;
      });
  }

  function signIn(form, csrf) {
    var nextField = form.querySelector("input[name=next]");
    return post("/signin/passkey/start", csrf, {})
      .then(function (started) {
        return navigator.credentials.get(requestOptions(started.options)).then(function (cred) {
          return post("/signin/passkey/finish", csrf, {
            ceremonyId: started.ceremonyId,
            credential: assertionJson(cred),
            next: nextField ? nextField.value : null
          });
        });
      })
      .then(function (done) {
        return done.redirect;
      });
  }

  function start() {
    if (!supported()) return;
    Array.prototype.forEach.call(document.querySelectorAll("form[data-passkey-signin]"), function (f) {
      wire(f, signIn);
    });
    Array.prototype.forEach.call(document.querySelectorAll("form[data-passkey-register]"), function (f) {
      wire(f, register);
    });
    Array.prototype.forEach.call(document.querySelectorAll("[data-passkey-needs-js]"), function (p) {
      p.hidden = true;
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
