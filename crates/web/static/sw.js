// Musubi's service worker (served as /sw.js, scope "/"): it only shows web pushes and opens
// them. It has no fetch handler and caches nothing: pages may hold patient information and
// must never be kept on the device. A push holds a fixed title and body and an address made
// of ids (see crates/domain/src/push.rs); the address is opened only if it is on this site.
"use strict";

var ICON = "/static/icon-192.png";
var DEFAULT_TITLE = "結び";
var DEFAULT_BODY = "新しい書きこみがあります";

self.addEventListener("install", function () {
  self.skipWaiting();
});

self.addEventListener("activate", function (event) {
  event.waitUntil(self.clients.claim());
});

// An address of this site, or the home page: never another origin, never javascript: or data:.
function sameOriginUrl(raw) {
  var home = self.location.origin + "/home";
  if (typeof raw !== "string" || raw === "") return home;
  try {
    var url = new URL(raw, self.location.origin);
    return url.origin === self.location.origin ? url.href : home;
  } catch (e) {
    return home;
  }
}

self.addEventListener("push", function (event) {
  var data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch (e) {
    data = {};
  }
  var title = typeof data.title === "string" && data.title ? data.title : DEFAULT_TITLE;
  var body = typeof data.body === "string" && data.body ? data.body : DEFAULT_BODY;
  var url = sameOriginUrl(data.url);
  // News open the home page and share its tag (a second one replaces the first); an urgent
  // one opens its own comment, shows on its own and stays until it is tapped or dismissed.
  var path = new URL(url).pathname;
  var urgent = path.indexOf("/a/") === 0;
  event.waitUntil(
    self.registration.showNotification(title, {
      body: body,
      icon: ICON,
      badge: ICON,
      lang: "ja",
      tag: "musubi:" + path,
      renotify: true,
      requireInteraction: urgent,
      data: { url: url }
    })
  );
});

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var data = event.notification.data || {};
  var url = sameOriginUrl(data.url);
  event.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then(function (list) {
      var i;
      for (i = 0; i < list.length; i++) {
        if (list[i].url === url && "focus" in list[i]) return list[i].focus();
      }
      // A window of Musubi already open: show the address there (only a window this worker
      // controls can be navigated; any other answer opens a new one).
      for (i = 0; i < list.length; i++) {
        var open = list[i];
        if (new URL(open.url).origin === self.location.origin && "navigate" in open) {
          return open
            .navigate(url)
            .then(function (c) {
              return c ? c.focus() : self.clients.openWindow(url);
            })
            .catch(function () {
              return self.clients.openWindow(url);
            });
        }
      }
      return self.clients.openWindow(url);
    })
  );
});
