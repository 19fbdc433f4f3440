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

  function start() {
    addPasswordToggles();
    enablePrintButtons();
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
