// Live updates for the home, groups, group and topic pages. Progressive enhancement only:
// without this file the pages are complete, just not updated until reloaded.
//
// It listens to the `events` GraphQL subscription over /graphql/ws (graphql-transport-ws; the
// session cookie authenticates) and, when an event concerns a part of the page marked
// `data-live-src`, fetches that part's HTML again from the server and swaps it in. Events carry
// ids only: what is shown always comes from the server, authorized like any page. The header's
// unread badge follows `unread.total` of the events and `data-unread-total` of the fragments.
//
// Marks on a live part:
//   data-live-src="/path"      where to fetch it (same origin)
//   data-live-topic="<id>"     only events of this topic
//   data-live-group="<id>"     only events of this group
//   data-live-any              events of any group
//   data-live-kinds="a b"      only these kinds (default: by kind of part, see below)
//   data-live-self="<id>"      the viewer: their own footprints need no refresh
// <body data-live-after="<n>"> is the newest event id when the page was made: events after it
// are replayed on connecting, so nothing that happened while the page loaded is missed.
(function () {
  "use strict";
  if (!window.WebSocket || !window.fetch || !window.DOMParser || !window.JSON) return;

  var parts = Array.prototype.slice.call(document.querySelectorAll("[data-live-src]"));
  if (!parts.length) return;

  var QUERY =
    "subscription Live($after: ID) { events(after: $after) " +
    "{ id kind groupId topicId actorId unread { total } } }";
  var DEBOUNCE_MS = 250;
  var MIN_BACKOFF_MS = 1000;
  var MAX_BACKOFF_MS = 30000;

  // What changes each kind of part.
  var TOPIC_KINDS = ["comment_posted", "comment_edited", "comment_deleted", "footprint_added",
    "acknowledged", "topic_changed", "membership_changed"];
  var LIST_KINDS = ["comment_posted", "comment_edited", "comment_deleted", "unread_changed",
    "topic_changed", "membership_changed"];

  var lastId = document.body.getAttribute("data-live-after") || null;
  var socket = null;
  var attempt = 0;
  var connectedBefore = false;
  var stopped = false;
  // The page is in the browser's back/forward cache: no connection until it is shown again.
  var suspended = false;
  var reconnectTimer = null;

  // For people debugging and for the browser tests: <html data-live="connected|…">.
  function state(name) {
    document.documentElement.setAttribute("data-live", name);
  }

  function kindsOf(part) {
    var own = part.getAttribute("data-live-kinds");
    if (own) return own.split(/\s+/);
    return part.hasAttribute("data-live-topic") ? TOPIC_KINDS : LIST_KINDS;
  }

  function concerns(part, event) {
    var kind = String(event.kind || "").toLowerCase();
    if (kindsOf(part).indexOf(kind) < 0) return false;
    // My own reading needs no refresh of what I am reading.
    if (kind === "footprint_added" && event.actorId === part.getAttribute("data-live-self")) {
      return false;
    }
    var topic = part.getAttribute("data-live-topic");
    if (topic) return event.topicId === topic;
    var group = part.getAttribute("data-live-group");
    if (group) return event.groupId === group;
    return true;
  }

  // --- The header's unread badge ------------------------------------------------------------

  function showUnread(total) {
    var n = parseInt(total, 10);
    if (isNaN(n) || n < 0) return;
    var text = n > 99 ? "99+" : String(n);
    Array.prototype.forEach.call(document.querySelectorAll("[data-unread-badge]"), function (b) {
      var count = b.querySelector("[data-unread-count]");
      if (count) count.textContent = n > 0 ? text : "";
      b.hidden = n === 0;
    });
  }

  // --- Fetching and swapping a part ---------------------------------------------------------

  // Someone typing in (or having changed) a field of the part: do not replace it under them.
  function busy(part) {
    var active = document.activeElement;
    if (active && active !== document.body && part.contains(active) &&
        /^(TEXTAREA|INPUT|SELECT)$/.test(active.tagName)) {
      return true;
    }
    var fields = part.querySelectorAll("textarea, input[type=text], input[type=checkbox]");
    for (var i = 0; i < fields.length; i++) {
      var f = fields[i];
      if (f.type === "checkbox" ? f.checked !== f.defaultChecked : f.value !== f.defaultValue) {
        return true;
      }
    }
    return false;
  }

  // The first element with an id still on screen, and where it is: kept there after the swap,
  // so that reading is not disturbed by what changes above.
  function anchorOf(part) {
    var items = part.querySelectorAll("li[id]");
    for (var i = 0; i < items.length; i++) {
      var top = items[i].getBoundingClientRect().top;
      if (top >= 0) return { id: items[i].id, top: top };
    }
    return null;
  }

  function swap(part, html) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    var root = doc.querySelector(".live-root");
    if (!root) return;
    var old = part.querySelector(".live-root");
    var before = old ? old.getAttribute("data-count") : null;
    var open = [];
    Array.prototype.forEach.call(part.querySelectorAll("details[open][id]"), function (d) {
      open.push(d.id);
    });
    var anchor = anchorOf(part);
    var focused = document.activeElement && part.contains(document.activeElement)
      ? document.activeElement.id : "";

    part.replaceChildren(document.importNode(root, true));

    open.forEach(function (id) {
      var d = document.getElementById(id);
      if (d && d.tagName === "DETAILS") d.open = true;
    });
    if (anchor) {
      var again = document.getElementById(anchor.id);
      if (again) window.scrollBy(0, again.getBoundingClientRect().top - anchor.top);
    }
    if (focused) {
      var el = document.getElementById(focused);
      if (el) el.focus({ preventScroll: true });
    }
    showUnread(root.getAttribute("data-unread-total"));
    // topic.js watches the new comments for what comes on screen.
    try {
      part.dispatchEvent(new CustomEvent("live:swapped"));
    } catch (e) {
      // very old browser: nothing listens there either
    }
    var after = root.getAttribute("data-count");
    if (before !== null && after !== null && after !== before) announce(part);
  }

  // A short polite message for screen readers (the status line after the part).
  function announce(part) {
    var status = part.parentNode && part.parentNode.querySelector("[data-live-status]");
    if (!status) return;
    status.textContent = "";
    window.setTimeout(function () {
      status.textContent = status.getAttribute("data-live-message") || "";
    }, 50);
  }

  function refresh(part) {
    if (part.getAttribute("data-live-dead") === "true") return;
    if (document.hidden) {
      // Not on screen: nobody is looking; fetch when the page is shown again.
      part.setAttribute("data-live-pending", "true");
      return;
    }
    if (busy(part)) {
      part.setAttribute("data-live-pending", "true");
      return;
    }
    if (part._liveFetching) {
      // One request at a time, so an older answer never replaces a newer one.
      part._liveAgain = true;
      return;
    }
    part._liveFetching = true;
    part.removeAttribute("data-live-pending");
    window.fetch(part.getAttribute("data-live-src"), {
      credentials: "same-origin",
      cache: "no-store",
      headers: { Accept: "text/html" },
    }).then(function (res) {
      if (res.redirected || res.status === 404) {
        // Signed out, or no longer allowed to see it: leave the page as it is.
        part.setAttribute("data-live-dead", "true");
        if (res.redirected) stop();
        return null;
      }
      return res.ok ? res.text() : null;
    }).then(function (html) {
      if (html) swap(part, html);
    }).catch(function () {
      // Offline for a moment: the next event or the reconnection tries again.
      part.setAttribute("data-live-pending", "true");
    }).then(function () {
      part._liveFetching = false;
      if (part._liveAgain) {
        part._liveAgain = false;
        schedule(part);
      }
    });
  }

  // Several events in a row (a replay, someone reading many comments): one fetch.
  function schedule(part) {
    if (part._liveTimer) return;
    part._liveTimer = window.setTimeout(function () {
      part._liveTimer = null;
      refresh(part);
    }, DEBOUNCE_MS);
  }

  function refreshAll() {
    parts.forEach(schedule);
  }

  function retryPending() {
    parts.forEach(function (part) {
      if (part.getAttribute("data-live-pending") === "true") schedule(part);
    });
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) retryPending();
  });
  parts.forEach(function (part) {
    part.addEventListener("focusout", function () {
      window.setTimeout(retryPending, 0);
    });
  });

  // --- graphql-transport-ws -----------------------------------------------------------------

  function send(ws, message) {
    try {
      ws.send(JSON.stringify(message));
    } catch (e) {
      // closing: onclose reconnects
    }
  }

  function onEvent(event) {
    if (!event) return;
    lastId = event.id;
    if (event.unread && event.unread.total !== undefined) showUnread(event.unread.total);
    parts.forEach(function (part) {
      if (concerns(part, event)) schedule(part);
    });
  }

  function unauthenticated(payload) {
    var errors = Array.isArray(payload) ? payload : (payload && payload.errors) || [];
    return errors.some(function (e) {
      return e && e.extensions && e.extensions.code === "UNAUTHENTICATED";
    });
  }

  function connect() {
    if (reconnectTimer) {
      window.clearTimeout(reconnectTimer);
      reconnectTimer = null;
    }
    if (stopped || suspended || socket) return;
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/graphql/ws";
    var ws;
    try {
      ws = new WebSocket(url, "graphql-transport-ws");
    } catch (e) {
      reconnectLater();
      return;
    }
    socket = ws;
    state("connecting");
    ws.onopen = function () {
      send(ws, { type: "connection_init", payload: {} });
    };
    ws.onmessage = function (m) {
      var msg;
      try {
        msg = JSON.parse(m.data);
      } catch (e) {
        return;
      }
      switch (msg.type) {
        case "connection_ack":
          attempt = 0;
          state("connected");
          send(ws, {
            id: "events",
            type: "subscribe",
            payload: { query: QUERY, variables: lastId ? { after: String(lastId) } : {} },
          });
          // Whatever happened while disconnected: fetch afresh (the replay says it too).
          if (connectedBefore) refreshAll();
          connectedBefore = true;
          break;
        case "ping":
          send(ws, { type: "pong" });
          break;
        case "next":
          if (msg.payload && msg.payload.errors && msg.payload.errors.length) {
            if (unauthenticated(msg.payload)) stop();
            else ws.close();
            return;
          }
          onEvent(msg.payload && msg.payload.data && msg.payload.data.events);
          break;
        case "error":
          if (unauthenticated(msg.payload)) stop();
          else ws.close();
          break;
        case "complete":
          // The server ended the stream (e.g. the session ended): try again later, which
          // finds out which.
          ws.close();
          break;
      }
    };
    ws.onclose = function () {
      if (socket === ws) socket = null;
      if (!stopped) state("reconnecting");
      reconnectLater();
    };
  }

  function reconnectLater() {
    if (stopped || suspended || reconnectTimer) return;
    var delay = Math.min(MAX_BACKOFF_MS, MIN_BACKOFF_MS * Math.pow(2, attempt));
    attempt += 1;
    // Spread the reconnections of many pages after a server restart.
    reconnectTimer = window.setTimeout(connect, delay / 2 + Math.random() * (delay / 2));
  }

  function stop() {
    stopped = true;
    state("stopped");
    if (socket) {
      try {
        socket.close();
      } catch (e) {
        // already closed
      }
    }
  }

  // Back from the background (a phone's tab, a laptop's lid): the connection may be long gone.
  window.addEventListener("online", function () {
    attempt = 0;
    connect();
  });
  window.addEventListener("pagehide", function () {
    suspended = true;
    var open = socket;
    socket = null;
    if (open) open.close();
  });
  window.addEventListener("pageshow", function (e) {
    if (!e.persisted) return;
    suspended = false;
    attempt = 0;
    connect();
    refreshAll();
  });

  connect();
})();
