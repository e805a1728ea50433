/* The session-timeout warning (WCAG 2.2.1, Timing Adjustable), after GOV.UK's pattern.
 *
 * Loaded only on a page someone is signed in to. Its <script> tag carries the limits as the
 * server counts them (data-idle-seconds, data-idle-left-seconds, data-ends-in-seconds,
 * data-warn-seconds), for a page drawn from a form's POST the page to return to after signing
 * in again (data-next: the form's page), the page's CSRF token and, where leaving the page
 * loses more than what was typed (a desk's not-sent page: its re-send), what to do about it
 * (data-lost: said in the warning and the signed-out banner): nothing here is hard-coded. Before the session ends a modal alert dialog says so and offers "Stay signed
 * in" (a same-origin POST to /session/keep-alive, which starts the server's idle clock
 * again) and "Sign out".
 *
 * This tab counts from its own page, but another tab may have used the session since: so
 * at the warning's time and again at the end it asks GET /session/status (which only looks,
 * and so keeps nothing alive) how long the session really has. Used elsewhere, any dialog
 * closes and the countdown starts again from the server's answer; only when the server says
 * the session has ended does the page go to the sign-in page, which says so. Without this
 * script every page works as before. Nothing typed on the page is read or sent: only
 * whether something was typed, so that the sign-in page can say it was not saved.
 *
 * Typing is not activity here: only a request the server sees (a page opened, a form sent,
 * "Stay signed in") starts the idle clock again. A keep-alive per keystroke would keep a
 * session open on a shared computer for as long as anyone typed into it.
 *
 * Signed out before the end (in another tab, by a restart), or at the end on a page with
 * data-lost (whose warning says to keep it open), the page is no modal: what was typed, or
 * the re-send, must stay reachable. The dialog closes, the page is usable again and a
 * banner at the top of <main> says so, with a link to sign in again; it takes the focus.
 */
(function () {
  "use strict";

  var tag = document.querySelector("script[data-idle-seconds]");
  if (!tag || !window.fetch || !window.URLSearchParams) {
    return;
  }
  var num = function (name) {
    var n = Number(tag.getAttribute(name));
    return isFinite(n) && n >= 0 ? n : null;
  };
  var idle = num("data-idle-seconds");
  var idleLeft = num("data-idle-left-seconds");
  var endsIn = num("data-ends-in-seconds");
  var warn = num("data-warn-seconds");
  var csrf = tag.getAttribute("data-csrf") || "";
  var nextPage = tag.hasAttribute("data-next") ? tag.getAttribute("data-next") : null;
  var lost = tag.getAttribute("data-lost") || "";
  if (idle === null || idleLeft === null || endsIn === null || warn === null) {
    return;
  }

  // Deadlines on the wall clock, checked every second: a timer in a background tab or a
  // sleeping laptop can fire late, a comparison with Date.now() cannot be fooled by that.
  // A second's margin: the page must never think the session over before the server does.
  var MARGIN = 1000;
  var loaded = Date.now();
  var idleEnd = loaded + idleLeft * 1000 + MARGIN;
  var lifeEnd = loaded + endsIn * 1000 + MARGIN;

  var dialog = null;
  var shown = null; // "idle" or "lifetime": what the dialog says now
  var banner = null; // the signed-out banner, once the session has ended
  var returnFocus = null;
  var made = [];
  var busy = false;
  var asking = false; // a question to /session/status is under way
  var askAgain = 0; // after an unanswered question, not before this time
  var lifeWarned = false; // the lifetime's warning, once dismissed, is not shown again

  var link = document.createElement("link");
  link.rel = "stylesheet";
  link.href = "/static/session.css";
  document.head.appendChild(link);

  // Times as a person says them: whole minutes from two and a half, half minutes from one,
  // else seconds in fives, rounded up (29.6 seconds left is "30 seconds", not "29"). Half
  // minutes, so that the two times the warning gives add up to the limit at a short one (a
  // 3-minute limit warns 90 seconds before: "1 minute 30 seconds" twice, not "2 minutes"
  // twice).
  function rounded(seconds) {
    if (seconds >= 150) {
      return Math.round(seconds / 60) * 60;
    }
    if (seconds >= 60) {
      return Math.round(seconds / 30) * 30;
    }
    return Math.max(5, Math.ceil(seconds / 5) * 5);
  }

  function spoken(seconds) {
    if (seconds < 60) {
      return seconds + " seconds";
    }
    var minutes = Math.floor(seconds / 60);
    var words = minutes + (minutes === 1 ? " minute" : " minutes");
    var rest = seconds - minutes * 60;
    return rest ? words + " " + rest + " seconds" : words;
  }

  function typedSomething() {
    var fields = document.querySelectorAll("main input, main textarea");
    for (var i = 0; i < fields.length; i++) {
      var f = fields[i];
      var kind = (f.type || "").toLowerCase();
      if (kind === "hidden" || kind === "submit" || kind === "button" || kind === "checkbox" ||
          kind === "radio") {
        continue;
      }
      if (f.value !== f.defaultValue && f.value.trim() !== "") {
        return true;
      }
    }
    return false;
  }

  function signInPage() {
    // A page drawn from a form's POST has the POST's address, which is no page to come
    // back to: the server names the form's page instead.
    var here = nextPage !== null ? nextPage : location.pathname + location.search;
    var query = new URLSearchParams();
    if (here !== "" && here !== "/") {
      query.set("next", here);
    }
    if (typedSomething()) {
      query.set("lost", "1");
    }
    var q = query.toString();
    return "/login" + (q ? "?" + q : "");
  }

  function el(name, attrs, text) {
    var node = document.createElement(name);
    Object.keys(attrs).forEach(function (k) {
      node.setAttribute(k, attrs[k]);
    });
    if (text) {
      node.textContent = text;
    }
    return node;
  }

  function build() {
    var overlay = el("div", { "class": "session-timeout-overlay", "id": "session-timeout" });
    var box = el("div", {
      "class": "session-timeout",
      "role": "alertdialog",
      "aria-modal": "true",
      "aria-labelledby": "session-timeout-heading",
      "aria-describedby": "session-timeout-message",
      "tabindex": "-1"
    });
    box.appendChild(el("h2", { "id": "session-timeout-heading" }, ""));
    box.appendChild(el("p", { "id": "session-timeout-message" }, ""));
    box.appendChild(el("p", { "id": "session-timeout-problem", "class": "session-timeout-problem",
                              "role": "alert" }, ""));
    var actions = el("div", { "class": "session-timeout-actions" });
    var stay = el("button", { "type": "button", "id": "session-stay" }, "Stay signed in");
    var out = el("button", { "type": "button", "id": "session-sign-out",
                             "class": "session-timeout-secondary" }, "Sign out");
    actions.appendChild(stay);
    actions.appendChild(out);
    box.appendChild(actions);
    overlay.appendChild(box);
    stay.addEventListener("click", primary);
    out.addEventListener("click", signOut);
    box.addEventListener("keydown", keys);
    return overlay;
  }

  function buttons() {
    return Array.prototype.filter.call(dialog.querySelectorAll("button"), function (b) {
      return !b.hidden;
    });
  }

  function keys(event) {
    if (event.key === "Escape") {
      event.preventDefault();
      primary();
      return;
    }
    if (event.key !== "Tab") {
      return;
    }
    // Focus stays in the dialog while it is open.
    var list = buttons();
    var first = list[0];
    var last = list[list.length - 1];
    if (event.shiftKey && document.activeElement === first) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && document.activeElement === last) {
      event.preventDefault();
      first.focus();
    }
  }

  function say(kind, seconds) {
    var heading = dialog.querySelector("#session-timeout-heading");
    var message = dialog.querySelector("#session-timeout-message");
    var stay = dialog.querySelector("#session-stay");
    var out = dialog.querySelector("#session-sign-out");
    dialog.querySelector("#session-timeout-problem").textContent = "";
    out.hidden = false;
    if (kind === "idle") {
      heading.textContent = "You are about to be signed out";
      var left = rounded(seconds);
      // Typing sends nothing, so it does not count: say what does, not "you have not done
      // anything" to someone who has been typing all along.
      message.textContent = "You will be signed out in " + spoken(left) + " because " +
        "nothing has been sent or opened for " + spoken(rounded(Math.max(0, idle - left))) +
        ". What you have typed on this page is not saved." + (lost ? " " + lost : "");
      stay.textContent = "Stay signed in";
    } else {
      heading.textContent = "You are about to be signed out";
      message.textContent = "You will be signed out in " + spoken(rounded(seconds)) +
        " because a session cannot last longer, whatever you do. What you have typed on " +
        "this page is not saved: send or copy it now, then sign in again." +
        (lost ? " " + lost : "");
      stay.textContent = "Continue";
    }
    shown = kind;
  }

  function open(kind, seconds) {
    if (dialog === null) {
      dialog = build();
    }
    if (!dialog.isConnected) {
      returnFocus = document.activeElement;
      // The rest of the page is out of reach while the dialog is open (aria-modal says so
      // to a screen reader; inert makes it so for the keyboard and the pointer).
      made = Array.prototype.filter.call(document.body.children, function (child) {
        return !child.hasAttribute("inert");
      });
      made.forEach(function (child) {
        child.setAttribute("inert", "");
      });
      document.body.appendChild(dialog);
    }
    say(kind, seconds);
    dialog.querySelector("#session-stay").focus();
  }

  function close() {
    if (dialog === null || !dialog.isConnected) {
      return;
    }
    dialog.remove();
    made.forEach(function (child) {
      child.removeAttribute("inert");
    });
    made = [];
    shown = null;
    if (returnFocus && returnFocus.isConnected && typeof returnFocus.focus === "function") {
      returnFocus.focus();
    }
  }

  // The session has ended with the page still open: no modal, so that what was typed can be
  // reached, selected and copied. A banner at the top of <main> (role="alert", so it is
  // announced) says so and links to the sign-in page; the focus moves to it.
  function ended() {
    window.clearInterval(timer);
    close();
    if (banner !== null) {
      return;
    }
    banner = el("div", {
      "class": "session-ended",
      "id": "session-ended",
      "role": "alert",
      "aria-labelledby": "session-ended-heading",
      "tabindex": "-1"
    });
    banner.appendChild(el("h2", { "id": "session-ended-heading" }, "You have been signed out"));
    var text = el("p", { "id": "session-ended-message" },
      "What you typed on this page is not saved: copy it now if you need it. " +
      (lost ? lost + " " : ""));
    var again = el("a", { "id": "session-sign-in", "href": signInPage() }, "Sign in again");
    if (lost) {
      // Its warning says to sign in again in another tab: this page is to stay as it is.
      again.setAttribute("target", "_blank");
      again.setAttribute("rel", "noopener");
      again.textContent = "Sign in again (opens a new tab)";
    }
    // Asked again on the way out: whether something was typed may have changed since.
    again.addEventListener("click", function () {
      again.setAttribute("href", signInPage());
    });
    text.appendChild(again);
    banner.appendChild(text);
    var main = document.querySelector("main") || document.body;
    main.insertBefore(banner, main.firstChild);
    banner.focus();
  }

  function primary() {
    if (shown === "lifetime") {
      lifeWarned = true;
      close();
    } else {
      stayIn();
    }
  }

  function stayIn() {
    if (busy) {
      return;
    }
    busy = true;
    var body = new URLSearchParams();
    body.set("csrf", csrf);
    fetch("/session/keep-alive", {
      method: "POST",
      credentials: "same-origin",
      redirect: "error",
      body: body
    }).then(function (response) {
      busy = false;
      if (response.status === 204) {
        idleEnd = Date.now() + idle * 1000 + MARGIN;
        close();
      } else {
        // Signed out meanwhile (in another tab, by a restart): nothing to keep alive. The
        // page stays, so that what was typed can be copied.
        ended();
      }
    }, function () {
      busy = false;
      dialog.querySelector("#session-timeout-problem").textContent =
        "The server could not be reached. Check your connection and try again.";
    });
  }

  function signOut() {
    var form = el("form", { "method": "post", "action": "/logout" });
    var token = el("input", { "type": "hidden", "name": "csrf" });
    token.value = csrf;
    form.appendChild(token);
    document.body.appendChild(form);
    form.submit();
  }

  // Whether the warning is due now for the deadlines as they stand.
  function warnable(now) {
    var end = Math.min(idleEnd, lifeEnd);
    var kind = lifeEnd <= idleEnd ? "lifetime" : "idle";
    return now >= end - warn * 1000 && !(kind === "lifetime" && lifeWarned);
  }

  function answered(status, atEnd) {
    if (!status.signed_in) {
      window.clearInterval(timer);
      if (atEnd && !lost) {
        location.assign(signInPage());
      } else {
        // Ended early (signed out in another tab, a restart): the page stays, so that what
        // was typed can be copied. So too at the end of a page that holds more than what
        // was typed (data-lost: a desk's re-send, which exists on this page only, and which
        // Back would not bring back from the browser's cache).
        ended();
      }
      return;
    }
    var now = Date.now();
    idleEnd = now + status.idle_left_seconds * 1000 + MARGIN;
    lifeEnd = now + status.ends_in_seconds * 1000 + MARGIN;
    var end = Math.min(idleEnd, lifeEnd);
    var kind = lifeEnd <= idleEnd ? "lifetime" : "idle";
    if (!warnable(now)) {
      close(); // used in another tab meanwhile: the countdown starts again
    } else if (shown !== kind) {
      open(kind, (end - MARGIN - now) / 1000);
    }
  }

  function ask(atEnd) {
    asking = true;
    fetch("/session/status", {
      method: "GET",
      credentials: "same-origin",
      cache: "no-store",
      redirect: "error"
    }).then(function (response) {
      if (!response.ok) {
        throw new Error("status " + response.status);
      }
      return response.json();
    }).then(function (status) {
      asking = false;
      answered(status, atEnd);
    }, function () {
      // Unanswered (offline, the server restarting): the page stays as it is and asks
      // again shortly; going to the sign-in page could only fail too.
      asking = false;
      askAgain = Date.now() + 10000;
      if (dialog !== null && dialog.isConnected) {
        dialog.querySelector("#session-timeout-problem").textContent =
          "The server could not be reached. Check your connection.";
      }
    });
  }

  function tick() {
    var now = Date.now();
    if (asking || now < askAgain) {
      return;
    }
    if (now >= Math.min(idleEnd, lifeEnd)) {
      ask(true);
    } else if (shown === null && warnable(now)) {
      ask(false);
    }
  }

  var timer = window.setInterval(tick, 1000);
  tick();
})();
