// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";
  var root = document.documentElement;
  root.classList.remove("no-js");
  root.classList.add("js");
  // Tells the server this browser runs the pages' scripts: a topic page then counts as read
  // only what topic.js reports as having been on screen (see ctx.rs, SCRIPT_COOKIE).
  document.cookie = "musubi_js=1; path=/; max-age=31536000; SameSite=Lax" +
    (window.location.protocol === "https:" ? "; Secure" : "");

  // "Show password": a button under each password field, labelled from the page's language.
  function addPasswordToggles() {
    var fields = document.querySelectorAll("input[data-password-toggle]");
    Array.prototype.forEach.call(fields, function (input) {
      var show = input.getAttribute("data-show-label") || "Show";
      var hide = input.getAttribute("data-hide-label") || "Hide";
      var button = document.createElement("button");
      button.type = "button";
      button.className = "password-toggle";
      button.textContent = show;
      button.setAttribute("aria-pressed", "false");
      if (input.id) button.setAttribute("aria-controls", input.id);
      button.addEventListener("click", function () {
        var showing = input.type === "text";
        input.type = showing ? "password" : "text";
        button.textContent = showing ? show : hide;
        button.setAttribute("aria-pressed", showing ? "false" : "true");
        input.focus();
      });
      input.insertAdjacentElement("afterend", button);
    });
  }

  // A second tap on a slow connection must not send a form twice: the second answer would
  // replace the first (e.g. the recovery codes, which are shown only once).
  function sendFormsOnce() {
    document.addEventListener("submit", function (event) {
      var form = event.target;
      if (!(form instanceof HTMLFormElement)) return;
      if (form.getAttribute("data-sent") === "true") {
        event.preventDefault();
        return;
      }
      form.setAttribute("data-sent", "true");
    });
    // Coming back with the browser's Back button shows the page from its cache: allow again.
    window.addEventListener("pageshow", function () {
      Array.prototype.forEach.call(document.querySelectorAll("form[data-sent]"), function (f) {
        f.removeAttribute("data-sent");
      });
    });
  }

  function enablePrintButtons() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-print]"), function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        window.print();
      });
    });
  }

  // The header's menu (a <details>) closes like a menu: Esc, or a tap elsewhere.
  function closeMenusLikeMenus() {
    var menus = function () {
      return Array.prototype.slice.call(document.querySelectorAll("details.site-menu[open]"));
    };
    document.addEventListener("keydown", function (event) {
      if (event.key !== "Escape") return;
      menus().forEach(function (m) {
        m.open = false;
        var summary = m.querySelector("summary");
        if (summary) summary.focus();
      });
    });
    document.addEventListener("click", function (event) {
      menus().forEach(function (m) {
        if (!m.contains(event.target)) m.open = false;
      });
    });
  }

  function start() {
    addPasswordToggles();
    enablePrintButtons();
    closeMenusLikeMenus();
  }

  sendFormsOnce();
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

// --- Association console: ask before sending a form that carries data-confirm. ---
// Runs in the capture phase on window, before "send once" above marks the form as sent, so a
// form the person said "no" to can still be sent later. Without JavaScript the forms are sent
// directly; the text next to each button says what it does.
(function () {
  "use strict";
  window.addEventListener(
    "submit",
    function (event) {
      var form = event.target;
      if (!(form instanceof HTMLFormElement)) return;
      var question = form.getAttribute("data-confirm");
      if (!question) return;
      if (!window.confirm(question)) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    },
    true
  );
})();

// --- Drafts: nothing typed is lost. ---
// A form marked data-draft="<owner>:<what>" keeps its text fields and check boxes on this
// device while they are typed in (localStorage, for 7 days), and gets them back when the page
// is opened again with the fields empty: after a session that expired while typing, a refused
// form token, a closed tab or a lost connection. The server marks the page after a successful
// send with data-draft-sent="<owner>:<what>", which forgets it; signing out forgets them all
// (a shared device must not show the next person what was typed).
(function () {
  "use strict";
  var PREFIX = "musubi.draft.";
  var MAX_AGE_MS = 7 * 24 * 60 * 60 * 1000;
  var store;
  try {
    store = window.localStorage;
    store.setItem(PREFIX + "probe", "1");
    store.removeItem(PREFIX + "probe");
  } catch (e) {
    return; // private mode or storage off: nothing to keep drafts in
  }

  function forEachDraftKey(fn) {
    var keys = [];
    for (var i = 0; i < store.length; i++) {
      var k = store.key(i);
      if (k && k.indexOf(PREFIX) === 0) keys.push(k);
    }
    keys.forEach(fn);
  }

  function read(key) {
    try {
      var d = JSON.parse(store.getItem(PREFIX + key) || "null");
      if (!d || typeof d.fields !== "object" || Date.now() - d.at > MAX_AGE_MS) return null;
      return d;
    } catch (e) {
      return null;
    }
  }

  function fieldsOf(form) {
    return Array.prototype.filter.call(form.elements, function (el) {
      return el.name && el.name !== "csrf" && !el.readOnly && !el.disabled &&
        (el.tagName === "TEXTAREA" || (el.tagName === "INPUT" &&
          /^(text|checkbox|search)$/.test(el.type)));
    });
  }

  function snapshot(form) {
    var fields = {};
    var typed = false;
    fieldsOf(form).forEach(function (el) {
      if (el.type === "checkbox") {
        fields[el.name + "=" + el.value] = el.checked;
      } else {
        fields[el.name] = el.value;
        if (el.value.trim() !== "" && el.value !== el.defaultValue) typed = true;
      }
    });
    return typed ? fields : null;
  }

  function save(form) {
    var key = form.getAttribute("data-draft");
    var fields = snapshot(form);
    try {
      if (fields) {
        store.setItem(PREFIX + key, JSON.stringify({ at: Date.now(), fields: fields }));
      } else {
        store.removeItem(PREFIX + key);
      }
    } catch (e) {
      // full: the server still keeps what a refused form carried
    }
  }

  // Only into empty fields: a page the server re-showed with the text keeps the server's.
  function restore(form) {
    var d = read(form.getAttribute("data-draft"));
    if (!d) return false;
    var els = fieldsOf(form);
    if (els.some(function (el) { return el.type !== "checkbox" && el.value !== ""; })) return false;
    els.forEach(function (el) {
      if (el.type === "checkbox") {
        var v = d.fields[el.name + "=" + el.value];
        if (typeof v === "boolean") el.checked = v;
      } else if (typeof d.fields[el.name] === "string") {
        el.value = d.fields[el.name];
      }
    });
    var note = document.createElement("p");
    note.className = "notice draft-note";
    note.setAttribute("role", "status");
    note.setAttribute("data-draft-restored", "");
    note.textContent = form.getAttribute("data-draft-restored") || "";
    form.insertBefore(note, form.firstChild);
    return true;
  }

  function start() {
    // Old drafts and the one just sent go first.
    forEachDraftKey(function (k) {
      if (!read(k.slice(PREFIX.length))) store.removeItem(k);
    });
    Array.prototype.forEach.call(document.querySelectorAll("[data-draft-sent]"), function (el) {
      store.removeItem(PREFIX + el.getAttribute("data-draft-sent"));
    });
    Array.prototype.forEach.call(document.querySelectorAll("form[data-draft]"), function (form) {
      restore(form);
      var timer = null;
      var later = function () {
        if (timer) window.clearTimeout(timer);
        timer = window.setTimeout(function () { timer = null; save(form); }, 300);
      };
      form.addEventListener("input", later);
      form.addEventListener("change", later);
      // Kept while it is being sent: the answer may be a sign-in page.
      form.addEventListener("submit", function () { save(form); });
    });
    // Closing the tab or switching apps right after the last keystroke: keep that too.
    var signingOut = false;
    var saveAll = function () {
      if (signingOut) return;
      Array.prototype.forEach.call(document.querySelectorAll("form[data-draft]"), function (form) {
        if (form.getAttribute("data-sent") !== "true") save(form);
      });
    };
    window.addEventListener("pagehide", saveAll);
    document.addEventListener("visibilitychange", function () {
      if (document.hidden) saveAll();
    });
    Array.prototype.forEach.call(document.querySelectorAll("form[action='/signout']"), function (f) {
      f.addEventListener("submit", function () {
        // Leaving the page saves drafts (above): not this time.
        signingOut = true;
        forEachDraftKey(function (k) { store.removeItem(k); });
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

// --- Attachments: photos from the camera and files, sent as they are chosen. ---
// A form marked data-attach-url has a block [data-attach] (hidden until this runs: without
// JavaScript nothing there would work) with file inputs [data-attach-input], a list
// [data-attach-list] and a hidden field [data-attach-ids]. Each chosen file is sent at once
// (multipart: the form's csrf first, then file) with its progress shown; the server answers
// {id, name, size, contentType, thumbnail} and keeps it visible to the uploader only until the
// form is sent with its id in `attachments` (comma-separated). 「取り消す」 takes it out again.
// The send button waits while files travel. Drafts (above) leave attachments out.
(function () {
  "use strict";
  if (!window.FormData || !window.XMLHttpRequest) return;

  function sizeLabel(bytes) {
    if (bytes >= 1024 * 1024) return (bytes / (1024 * 1024)).toFixed(1) + " MB";
    return Math.max(1, Math.ceil(bytes / 1024)) + " KB";
  }

  function named(template, name) {
    return (template || "").replace("{}", name);
  }

  function el(tag, className, text) {
    var e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function setUp(form) {
    var block = form.querySelector("[data-attach]");
    var list = form.querySelector("[data-attach-list]");
    var ids = form.querySelector("[data-attach-ids]");
    var status = form.querySelector("[data-attach-status]");
    var url = form.getAttribute("data-attach-url");
    var csrf = form.querySelector("input[name='csrf']");
    if (!block || !list || !ids || !url || !csrf) return;
    var max = parseInt(form.getAttribute("data-attach-max"), 10) || 10;
    var say = function (name) { return block.getAttribute("data-" + name) || ""; };
    var sends = Array.prototype.slice.call(form.querySelectorAll("button[type='submit']"));
    // Each chosen file: { item, xhr, id, failed }.
    var chosen = [];
    // A page the browser restores may bring back a value this list no longer shows.
    ids.value = "";
    block.hidden = false;

    function announce(text) {
      if (!status) return;
      status.textContent = "";
      window.setTimeout(function () { status.textContent = text; }, 50);
    }

    function busy() {
      return chosen.some(function (c) { return c.xhr !== null; });
    }

    function refresh() {
      ids.value = chosen
        .filter(function (c) { return c.id; })
        .map(function (c) { return c.id; })
        .join(",");
      var waiting = busy();
      sends.forEach(function (b) { b.disabled = waiting; });
      form.setAttribute("aria-busy", waiting ? "true" : "false");
    }

    function remove(entry) {
      if (entry.xhr) entry.xhr.abort();
      entry.xhr = null;
      chosen = chosen.filter(function (c) { return c !== entry; });
      if (entry.item.parentNode) entry.item.parentNode.removeChild(entry.item);
      refresh();
      announce(named(say("removed"), entry.name));
    }

    function fail(entry, message) {
      entry.xhr = null;
      entry.failed = true;
      entry.item.setAttribute("data-state", "failed");
      entry.progress.hidden = true;
      entry.state.hidden = true;
      var error = el("p", "attach-item__error", message || say("failed"));
      error.setAttribute("role", "alert");
      entry.body.appendChild(error);
      refresh();
    }

    function done(entry, answer) {
      entry.xhr = null;
      entry.id = String(answer.id);
      entry.item.setAttribute("data-state", "done");
      entry.item.setAttribute("data-file-id", entry.id);
      entry.progress.value = 100;
      entry.progress.hidden = true;
      entry.state.textContent = say("uploaded");
      if (answer.thumbnail) {
        var img = el("img", "attach-item__thumb");
        img.src = answer.thumbnail;
        img.alt = "";
        entry.item.replaceChild(img, entry.icon);
      }
      refresh();
      announce(entry.name + " " + say("uploaded"));
    }

    function send(entry, file) {
      var data = new FormData();
      data.append("csrf", csrf.value);
      data.append("file", file, file.name);
      var xhr = new XMLHttpRequest();
      entry.xhr = xhr;
      xhr.open("POST", url);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", function (event) {
        if (!event.lengthComputable) return;
        entry.progress.value = Math.round((event.loaded / event.total) * 100);
      });
      xhr.addEventListener("load", function () {
        if (entry.xhr !== xhr) return; // taken out meanwhile
        var answer = null;
        try {
          answer = JSON.parse(xhr.responseText);
        } catch (e) {
          answer = null; // e.g. the page a refused form token gets
        }
        if (xhr.status === 200 && answer && answer.id) {
          done(entry, answer);
        } else {
          fail(entry, answer && answer.message);
        }
      });
      xhr.addEventListener("error", function () {
        if (entry.xhr === xhr) fail(entry, null);
      });
      xhr.send(data);
    }

    function add(file) {
      var entry = { name: file.name, xhr: null, id: null, failed: false };
      var item = el("li", "attach-item");
      item.setAttribute("data-state", "uploading");
      entry.item = item;
      entry.icon = el("span", "attach-item__icon", /^image\//.test(file.type) ? "🖼️" : "📄");
      entry.icon.setAttribute("aria-hidden", "true");
      item.appendChild(entry.icon);
      var body = el("div", "attach-item__body");
      entry.body = body;
      var name = el("p", "attach-item__name", file.name);
      name.appendChild(document.createTextNode(" "));
      name.appendChild(el("span", "attach-item__size", sizeLabel(file.size)));
      body.appendChild(name);
      var progress = el("progress", "attach-item__progress");
      progress.max = 100;
      progress.value = 0;
      progress.setAttribute("aria-label", named(say("progress"), file.name));
      entry.progress = progress;
      body.appendChild(progress);
      entry.state = el("p", "attach-item__state", say("uploading"));
      body.appendChild(entry.state);
      item.appendChild(body);
      var cancel = el("button", "button button--small button--secondary attach-item__cancel", say("cancel"));
      cancel.type = "button";
      cancel.setAttribute("aria-label", named(say("cancel-named"), file.name));
      cancel.addEventListener("click", function () { remove(entry); });
      item.appendChild(cancel);
      list.appendChild(item);
      chosen.push(entry);
      var counted = chosen.filter(function (c) { return !c.failed; }).length;
      if (counted > max) {
        fail(entry, say("too-many"));
        return;
      }
      send(entry, file);
      refresh();
    }

    Array.prototype.forEach.call(form.querySelectorAll("input[data-attach-input]"), function (input) {
      input.addEventListener("change", function () {
        Array.prototype.forEach.call(input.files || [], add);
        // The same photo may be chosen again after taking it out.
        input.value = "";
      });
    });

    // Not while files travel (the button is disabled, but Enter in a field still sends).
    form.addEventListener("submit", function (event) {
      if (!busy()) return;
      event.preventDefault();
      event.stopPropagation();
      announce(say("wait"));
    });
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll("form[data-attach-url]"), setUp);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

// --- Web push: 「この端末に通知」 on /settings/notifications. ---
// The section (data-push) carries the server's VAPID public key and the CSRF token. Without
// the Push API (an old browser; an iPhone where Musubi is not opened from the home screen) it
// says why instead. Subscribing asks for permission, subscribes with the key and sends the
// subscription as JSON (X-CSRF-Token, as static/passkey.js). The line of this browser in the
// device list is marked; its 「解除」 also unsubscribes the browser. When the server's key
// changed, a browser the server still lists subscribes again by itself.
(function () {
  "use strict";
  var section = document.querySelector("[data-push]");
  if (!section) return;
  var key = section.getAttribute("data-push-key") || "";
  var csrf = section.getAttribute("data-push-csrf") || "";
  var button = section.querySelector("[data-push-subscribe]");
  var status = section.querySelector("[data-push-status]");
  var errorBox = section.querySelector("[data-push-error]");

  function show(selector) {
    var el = section.querySelector(selector);
    if (el) el.hidden = false;
  }
  var nojs = section.querySelector("[data-push-nojs]");
  if (nojs) nojs.hidden = true;

  var ua = navigator.userAgent || "";
  var ios = /iPhone|iPad|iPod/.test(ua) ||
    (navigator.platform === "MacIntel" && navigator.maxTouchPoints > 1);
  var standalone = window.navigator.standalone === true ||
    (window.matchMedia && window.matchMedia("(display-mode: standalone)").matches);
  var supported = "serviceWorker" in navigator && "PushManager" in window &&
    "Notification" in window && window.isSecureContext !== false && !!window.fetch;

  if (!key) {
    show("[data-push-unavailable]");
    return;
  }
  if (!supported) {
    show(ios && !standalone ? "[data-push-ios]" : "[data-push-unsupported]");
    return;
  }

  function fromBase64url(text) {
    var b64 = String(text).replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) b64 += "=";
    var bin = window.atob(b64);
    var bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return bytes;
  }

  function toBase64url(buffer) {
    if (!buffer) return "";
    var bytes = new Uint8Array(buffer);
    var bin = "";
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return window.btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function hasKey(sub) {
    return !!(sub && sub.options && toBase64url(sub.options.applicationServerKey) === key);
  }

  function listedLine(sub) {
    if (!sub) return null;
    var lines = section.querySelectorAll("[data-push-endpoint]");
    for (var i = 0; i < lines.length; i++) {
      if (lines[i].getAttribute("data-push-endpoint") === sub.endpoint) return lines[i];
    }
    return null;
  }

  function fail(message) {
    if (!errorBox) return;
    errorBox.textContent = message || section.getAttribute("data-msg-failed") || "";
    errorBox.hidden = false;
  }

  function askPermission() {
    if (Notification.permission === "granted") return Promise.resolve("granted");
    return new Promise(function (resolve) {
      // Older Safari takes a callback and returns nothing.
      var answer = Notification.requestPermission(resolve);
      if (answer && typeof answer.then === "function") answer.then(resolve);
    });
  }

  // Subscribes with the server's key (dropping a subscription made with another) and sends it.
  function subscribeAndSend(reg) {
    return reg.pushManager
      .getSubscription()
      .then(function (old) {
        if (old && !hasKey(old)) {
          return old.unsubscribe().then(function () {
            return null;
          });
        }
        return old;
      })
      .then(function (old) {
        return old || reg.pushManager.subscribe({
          userVisibleOnly: true,
          applicationServerKey: fromBase64url(key)
        });
      })
      .then(function (sub) {
        return window.fetch("/settings/push", {
          method: "POST",
          credentials: "same-origin",
          headers: {
            "Content-Type": "application/json",
            Accept: "application/json",
            "X-CSRF-Token": csrf
          },
          body: JSON.stringify(sub.toJSON())
        });
      })
      .then(function (res) {
        return res
          .json()
          .catch(function () {
            return null;
          })
          .then(function (data) {
            if (res.ok && data && data.redirect) return data.redirect;
            throw new Error(data && data.error ? data.error.message : "");
          });
      });
  }

  navigator.serviceWorker
    .register("/sw.js", { scope: "/" })
    .then(function (reg) {
      return reg.pushManager.getSubscription().then(function (sub) {
        var line = listedLine(sub);
        if (line) {
          var mark = line.querySelector("[data-push-this]");
          if (mark) mark.hidden = false;
          if (status) {
            status.textContent = section.getAttribute("data-msg-this") || "";
            status.hidden = false;
          }
          // 「解除」 on this browser's line also stops the browser's subscription.
          var form = line.querySelector("form");
          if (form) {
            form.addEventListener("submit", function (event) {
              event.preventDefault();
              sub.unsubscribe().then(
                function () { form.submit(); },
                function () { form.submit(); }
              );
            });
          }
          if (!hasKey(sub) && Notification.permission === "granted") {
            subscribeAndSend(reg).then(function (to) { window.location.assign(to); }, function () {});
          }
        }
        if (Notification.permission === "denied") {
          show("[data-push-denied]");
        } else if (button) {
          button.hidden = false;
          button.addEventListener("click", function () {
            button.disabled = true;
            if (errorBox) errorBox.hidden = true;
            askPermission()
              .then(function (permission) {
                if (permission !== "granted") {
                  show("[data-push-denied]");
                  button.hidden = true;
                  return null;
                }
                return subscribeAndSend(reg);
              })
              .then(function (to) {
                if (to) window.location.assign(to);
              })
              .catch(function (err) {
                button.disabled = false;
                fail(err && err.message);
              });
          });
        }
      });
    })
    .catch(function () {
      show("[data-push-unsupported]");
    });
})();
