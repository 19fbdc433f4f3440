// The topic page's behaviours. Progressive enhancement only: without this file the page is
// complete (opening it counts everything shown as read; readers are listed on their own page).
//
// - What was on screen: a comment not yet read by the viewer carries data-unseen="<seq>". Once
//   it has been on screen for a moment (half of it, or half the screen for a long one, while
//   the page is in front), its number is sent to data-seen-src: only then does it get the
//   viewer's footprint and leave the unread count. Jumping to the newest comment therefore
//   does not mark the ones above it. The server only honours this because app.js told it the
//   browser runs scripts (the musubi_js cookie).
// - Readers on demand: a comment's readers beyond the first few are fetched when its list is
//   opened (data-readers-src), instead of being sent with every page.
// - Opening where reading stopped: without a #fragment in the address, the page scrolls to
//   「ここから未読」.
(function () {
  "use strict";
  if (!window.fetch || !window.DOMParser) return;

  var DWELL_MS = 700;
  var FLUSH_MS = 400;
  var RETRY_MS = 5000;

  // --- What was on screen -------------------------------------------------------------------

  var list = document.querySelector("[data-seen-src]");
  var src = list && list.getAttribute("data-seen-src");
  var sent = {};
  var pending = {};
  var flushTimer = null;
  var stopped = false;
  var observer = null;
  // seq -> { el, visible, timer }
  var watched = {};

  function csrfToken() {
    var field = document.querySelector("input[name=csrf]");
    return field ? field.value : "";
  }

  function flush() {
    flushTimer = null;
    if (stopped) return;
    var seqs = Object.keys(pending);
    if (!seqs.length) return;
    pending = {};
    var body = "csrf=" + encodeURIComponent(csrfToken()) + "&seqs=" + seqs.join(",");
    window.fetch(src, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: body,
      // Sent even when the page is being left.
      keepalive: true,
    }).then(function (res) {
      if (res.redirected || res.status === 404 || res.status === 403 || res.status === 401) {
        // Signed out or no longer allowed: the next visit counts again.
        stopped = true;
        return;
      }
      if (!res.ok) throw new Error(String(res.status));
      document.documentElement.setAttribute("data-seen-sent", String(Object.keys(sent).length));
    }).catch(function () {
      // Offline for a moment: send these again later.
      seqs.forEach(function (s) { pending[s] = true; });
      if (!flushTimer) flushTimer = window.setTimeout(flush, RETRY_MS);
    });
  }

  function scheduleFlush(delay) {
    if (flushTimer) return;
    flushTimer = window.setTimeout(flush, delay);
  }

  function seen(seq) {
    var w = watched[seq];
    if (!w) return;
    if (w.timer) window.clearTimeout(w.timer);
    delete watched[seq];
    if (observer) observer.unobserve(w.el);
    w.el.removeAttribute("data-unseen");
    sent[seq] = true;
    pending[seq] = true;
    scheduleFlush(FLUSH_MS);
  }

  function arm(w) {
    if (w.timer || !w.visible || document.hidden) return;
    w.timer = window.setTimeout(function () {
      w.timer = null;
      if (w.visible && !document.hidden) seen(w.seq);
    }, DWELL_MS);
  }

  function disarm(w) {
    if (w.timer) window.clearTimeout(w.timer);
    w.timer = null;
  }

  function enoughOnScreen(entry) {
    if (!entry.isIntersecting) return false;
    var screen = window.innerHeight || document.documentElement.clientHeight;
    return entry.intersectionRatio >= 0.5 || entry.intersectionRect.height >= screen * 0.5;
  }

  function onChange(entries) {
    entries.forEach(function (entry) {
      var w = watched[entry.target.getAttribute("data-unseen")];
      if (!w || w.el !== entry.target) return;
      w.visible = enoughOnScreen(entry);
      if (w.visible) arm(w); else disarm(w);
    });
  }

  // (Re)reads the list: after loading, and after live.js swapped in a newer one.
  function watch() {
    Object.keys(watched).forEach(function (seq) { disarm(watched[seq]); });
    watched = {};
    if (observer) observer.disconnect();
    var items = list.querySelectorAll("[data-unseen]");
    if (!window.IntersectionObserver) {
      // No way to tell what is on screen: the page showed it, as without a script.
      Array.prototype.forEach.call(items, function (el) {
        var seq = el.getAttribute("data-unseen");
        watched[seq] = { el: el, seq: seq, visible: true, timer: null };
        seen(seq);
      });
      return;
    }
    observer = observer || new IntersectionObserver(onChange, { threshold: [0, 0.25, 0.5, 0.75, 1] });
    Array.prototype.forEach.call(items, function (el) {
      var seq = el.getAttribute("data-unseen");
      if (sent[seq]) {
        el.removeAttribute("data-unseen");
        return;
      }
      watched[seq] = { el: el, seq: seq, visible: false, timer: null };
      observer.observe(el);
    });
  }

  if (list && src) {
    watch();
    list.addEventListener("live:swapped", watch);
    document.addEventListener("visibilitychange", function () {
      Object.keys(watched).forEach(function (seq) {
        var w = watched[seq];
        if (document.hidden) disarm(w); else arm(w);
      });
      if (document.hidden) flush();
    });
    window.addEventListener("pagehide", flush);
  }

  // --- 「新しいコメント N 件」 -------------------------------------------------------------------
  // A comment that arrives while reading is added below; when it is off screen, a button says
  // so and takes the reader there.

  var known = {};
  var notice = null;
  var fresh = [];

  function remember() {
    if (!list) return;
    Array.prototype.forEach.call(list.querySelectorAll("li.comment[id]"), function (li) {
      known[li.id] = true;
    });
  }

  function hideNotice() {
    fresh = [];
    if (notice) notice.hidden = true;
  }

  function showNotice() {
    if (!notice) {
      notice = document.createElement("button");
      notice.type = "button";
      notice.className = "new-comments";
      notice.hidden = true;
      notice.addEventListener("click", function () {
        var first = fresh.length && document.getElementById(fresh[0]);
        if (first) first.scrollIntoView({ block: "start", behavior: "smooth" });
        hideNotice();
      });
      list.parentNode.insertBefore(notice, list.nextSibling);
    }
    var text = list.getAttribute("data-new-comments") || "{}";
    notice.textContent = text.replace("{}", String(fresh.length));
    notice.hidden = false;
  }

  function onSwapped() {
    var arrived = [];
    Array.prototype.forEach.call(list.querySelectorAll("li.comment[id]"), function (li) {
      if (!known[li.id] && !li.classList.contains("comment--mine")) arrived.push(li.id);
    });
    remember();
    if (!arrived.length) return;
    var first = document.getElementById(arrived[0]);
    var screen = window.innerHeight || document.documentElement.clientHeight;
    if (first && first.getBoundingClientRect().top < screen) return; // already in sight
    fresh = fresh.concat(arrived);
    showNotice();
  }

  if (list) {
    remember();
    list.addEventListener("live:swapped", onSwapped);
    window.addEventListener("scroll", function () {
      if (!fresh.length) return;
      var first = document.getElementById(fresh[0]);
      if (first && first.getBoundingClientRect().top < (window.innerHeight || 0)) hideNotice();
    }, { passive: true });
  }

  // --- Readers on demand --------------------------------------------------------------------

  // `toggle` does not bubble: listen while it is captured on the way down.
  document.addEventListener("toggle", function (event) {
    var details = event.target;
    if (!details || details.tagName !== "DETAILS" || !details.open) return;
    var from = details.getAttribute("data-readers-src");
    if (!from || details.getAttribute("data-readers-loading") === "true") return;
    details.setAttribute("data-readers-loading", "true");
    window.fetch(from, {
      credentials: "same-origin",
      headers: { Accept: "text/html" },
    }).then(function (res) {
      return res.ok && !res.redirected ? res.text() : null;
    }).then(function (html) {
      if (!html) return;
      var doc = new DOMParser().parseFromString(html, "text/html");
      var all = doc.querySelector(".readers__list, .readers__none");
      var shown = details.querySelector(".readers__list");
      if (!all || !shown) return;
      shown.replaceWith(document.importNode(all, true));
      var link = details.querySelector(".readers__all");
      if (link) link.hidden = true;
      details.removeAttribute("data-readers-src");
    }).catch(function () {
      // Offline: the link to the whole list stays.
    }).then(function () {
      details.removeAttribute("data-readers-loading");
    });
  }, true);

  // --- Opening where reading stopped --------------------------------------------------------

  function toFirstUnread() {
    if (window.location.hash) return;
    var mark = document.getElementById("unread");
    if (mark) mark.scrollIntoView({ block: "start" });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", toFirstUnread);
  } else {
    toFirstUnread();
  }
})();
