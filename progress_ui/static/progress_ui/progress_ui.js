/* django-progress-ui: polling fallback.
 *
 * A component either streams or polls, never neither:
 * - when a session's SSE connection fails before any message got through (a
 *   proxy that blocks event streams, say; htmx 2 may not even retry), or fails
 *   FAILURES times in a row later on;
 * - or when no message arrives within WATCHDOG ms (the server sends the current
 *   state as soon as a stream opens, so silence means no stream was opened),
 * the component polls its polled form (the fragment endpoint's ?transport=poll,
 * named in data-progress-poll) every INTERVAL ms until the session has finished.
 * Only the regions follow it, as the stream's updates would (summary, bars,
 * status, outcome: morphed in place, so a bar's width still eases and the
 * status line is announced); the component's frame stays: its heading, its
 * Cancel button (hidden by the CSS once the summary reads final, as when
 * streamed) and its "Notify me when done" button, which keep keyboard focus
 * across polls (the polled form has neither heading nor buttons: the fragment
 * endpoint does not know the page's options). Its SSE connection closes first:
 * the element that holds it (.pui-stream) is replaced by a plain one holding the
 * same regions; removing it closes the connection in both htmx 2
 * (htmx-ext-sse) and htmx 4 (hx-sse).
 * A server that cannot keep a stream open answers 503 (too many streams: the
 * connection fails, as above) or ends it with a "progress-poll" event (a WSGI
 * stream past WSGI_MAX_STREAM_DURATION): the component polls from then on.
 * A poll answered 404 (the session expired, or is not this visitor's; or a
 * cache that restarted empty lost it) stops polling and shows the expired text
 * (data-progress-expired). Nothing live stays on the page then: the bars and
 * the summary that were still running or waiting read "Expired"
 * (data-progress-expired-label), with no percent, count, time left or message,
 * and the Cancel button goes (pui-session--expired), as when the server says
 * the session is gone; bars that had finished keep their final state. The component's
 * "live updates are unavailable" notice is hidden here: without this script it
 * stays visible.
 * Several components can share one connection: a group element
 * (data-progress-group, rendered by {% progress_group %}) connects once, and its
 * components have none of their own. Events of that connection fire on the
 * group, so sectionsOf() maps them to every component in it; when the shared
 * connection fails, the group element is replaced by a plain one holding the same
 * components (which closes the connection) and each component polls on its own.
 *
 * Settle events: when a session has settled, its outcome region holds an element
 * with data-pui-outcome (the event's detail, as JSON), whether it arrived by the
 * stream, by polling or in a page. Once per session (per tab: remembered in
 * sessionStorage, so a reload or a back button does not repeat it) a
 * "progress:complete", "progress:error" or "progress:cancelled" CustomEvent is
 * dispatched on the component; it bubbles to the document (htmx can listen:
 * hx-trigger="progress:complete from:body") and is cancelable: unless a listener
 * calls preventDefault(), a completed component with data-progress-success-url
 * sends the browser there.
 *
 * Opt-ins (per session, so a component replaced by its polled form keeps
 * them): with data-progress-tab-title the page's title shows the session's
 * data-pui-title (its outcome region: "42%", then "Complete"...)
 * before the page's own title; with data-progress-notify (the button's label) a
 * "Notify me when done" button asks for the permission when clicked, never
 * before, and the settle step then shows a notification with the status
 * sentence (data-pui-text). htmx 4 swaps regions by morphing, which changes the
 * outcome's attributes rather than adding elements: the observer watches both.
 */
(function () {
  "use strict";
  var FAILURES = 3;
  var INTERVAL = 2000;
  var WATCHDOG = 6000;
  var WHICH_HTMX = "https://django-progress-ui.readthedocs.io/en/latest/howto/customise.html#which-htmx";

  function sectionOf(target) {
    return target && target.closest ? target.closest("[data-progress-poll]") : null;
  }

  function sectionsOf(target) {
    // The live components an SSE event concerns: its own, or all of its group's.
    var section = sectionOf(target);
    if (section) return [section];
    var group = target && target.closest ? target.closest("[data-progress-group]") : null;
    return group ? Array.prototype.slice.call(group.querySelectorAll("[data-progress-poll]")) : [];
  }

  function ungroup(group) {
    // Removing the element closes its connection (both htmx versions), as for a
    // component's own; the components move, unchanged, into a plain element.
    var plain = document.createElement(group.tagName);
    plain.className = group.className;
    while (group.firstChild) plain.appendChild(group.firstChild);
    group.replaceWith(plain);
    return plain;
  }

  function unstream(section) {
    // The element holding the SSE connection is replaced by a plain one that
    // holds the same regions (their elements, and any focus in them, stay).
    var stream = section.querySelector(".pui-stream");
    if (!stream || !(stream.hasAttribute("sse-connect") || stream.hasAttribute("hx-sse:connect"))) {
      return;
    }
    var plain = document.createElement(stream.tagName);
    plain.className = stream.className;
    while (stream.firstChild) plain.appendChild(stream.firstChild);
    stream.replaceWith(plain);
  }

  function morph(old, fresh) {
    // old becomes like fresh, keeping the elements both have in the same place:
    // a bar's fill changes class (its width transition runs) rather than being
    // replaced, and a focused link stays focused.
    Array.prototype.slice.call(old.attributes).forEach(function (attr) {
      if (!fresh.hasAttribute(attr.name)) old.removeAttribute(attr.name);
    });
    Array.prototype.forEach.call(fresh.attributes, function (attr) {
      if (old.getAttribute(attr.name) !== attr.value) old.setAttribute(attr.name, attr.value);
    });
    var was = Array.prototype.slice.call(old.childNodes);
    var now = Array.prototype.slice.call(fresh.childNodes);
    now.forEach(function (node, n) {
      var before = was[n];
      if (before && before.nodeType === node.nodeType && before.nodeName === node.nodeName) {
        if (node.nodeType === 1) morph(before, node);
        else if (before.nodeValue !== node.nodeValue) before.nodeValue = node.nodeValue;
      } else if (before) {
        old.replaceChild(node, before);
      } else {
        old.appendChild(node);
      }
    });
    was.slice(now.length).forEach(function (node) { node.remove(); });
  }

  function follow(section, polled) {
    // The polled form's regions (all inside .pui-stream, as in the page, in the
    // same order) into the component's own; its frame is left as it is.
    var stream = section.querySelector(".pui-stream");
    var fresh = polled.querySelector(".pui-stream");
    if (stream && fresh) morph(stream, fresh);
  }

  function poll(section, url) {
    // The component polled is this element: once the page swaps it for another
    // or it leaves the page, this loop ends; a new component watches over itself.
    var sessionId = section.getAttribute("data-progress-session");
    // HX-Request: the server then leaves out the <noscript> refresh, which would
    // come alive in markup parsed with scripting off.
    fetch(url, { headers: { "HX-Request": "true" }, credentials: "same-origin" })
      .then(function (response) {
        if (response.status === 404) {
          if (section.isConnected) expire(section);
          return null;
        }
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        if (html === null || !section.isConnected) return;
        var polled = new DOMParser().parseFromString(html, "text/html").body.firstElementChild;
        if (!polled || polled.getAttribute("data-progress-session") !== sessionId) return;
        follow(section, polled);
        if (polled.hasAttribute("data-progress-poll")) {
          setTimeout(function () { poll(section, url); }, INTERVAL);
        } else {
          section.removeAttribute("data-progress-poll"); // settled: nothing live here now
        }
      })
      .catch(function () {
        if (section.isConnected) setTimeout(function () { poll(section, url); }, INTERVAL * 2);
      });
  }

  var LIVE = /\bpui-state--(pending|running)\b/;
  // What a live bar or summary shows that is no longer known once it is gone.
  var LIVE_PARTS = ".pui-bar__percent, .pui-summary__percent, .pui-bar__count, " +
    ".pui-bar__step, .pui-bar__share, .pui-bar__timing, .pui-bar__message";

  function expireRegion(region, label) {
    // A bar (or the summary) that was running or waiting: its state is unknown
    // now. As the server draws an expired session: "Expired", an empty bar.
    var state = region.querySelector(".pui-bar__state, .pui-badge");
    if (!state || !LIVE.test(state.className)) return;
    state.className = state.className.replace(LIVE, "pui-state--error");
    state.textContent = label;
    region.querySelectorAll(LIVE_PARTS).forEach(function (part) { part.remove(); });
    region.querySelectorAll("[role=progressbar]").forEach(function (bar) {
      bar.className = bar.className
        .replace(/\bpui-bar--(pending|running|simulated|indeterminate)\b/g, "")
        .replace(/\s+/g, " ").trim() + " pui-bar--error";
      bar.removeAttribute("aria-valuenow");
      bar.setAttribute("aria-valuetext", label);
    });
    region.querySelectorAll(".pui-bar__fill").forEach(function (fill) {
      fill.className = fill.className.replace(/\bpui-w-\d+\b/, "pui-w-0");
    });
  }

  function expire(section) {
    // Gone for good: no more polls; say so where the status sentence is, and
    // leave nothing that looks live (no running bar, no time left, no Cancel).
    var sessionId = section.getAttribute("data-progress-session");
    section.removeAttribute("data-progress-poll");
    section.classList.add("pui-session--expired");
    var text = section.getAttribute("data-progress-expired") || "";
    var label = section.getAttribute("data-progress-expired-label") || "";
    section.querySelectorAll(".pui-task, .pui-summary").forEach(function (region) {
      expireRegion(region, label);
    });
    var status = section.querySelector(".pui-status");
    if (status) status.textContent = text;
    var marker = section.querySelector("[data-pui-title]");
    if (marker) marker.remove(); // nothing to say in the page's title any more
    settle(section, {
      sessionId: sessionId, status: "error", percent: null, expired: true,
      tasks: {}, result: null, results: []
    }, text);
  }

  function fallBack(section) {
    if (!section || section.dataset.puiPolling) return;
    var group = section.closest("[data-progress-group]");
    if (group) {
      // The shared connection is given up: every component of the group polls.
      ungroup(group).querySelectorAll("[data-progress-poll]").forEach(fallBack);
      return;
    }
    section.dataset.puiPolling = "1";
    unstream(section);
    poll(section, section.getAttribute("data-progress-poll"));
  }

  function hideOfflineNotice(notice) {
    // The notice shows when this script never ran (static files not served, a
    // blocked script): the bars would otherwise sit frozen without a word.
    notice.hidden = true;
  }

  var said = {};

  function say(message) {
    // Each hint once per page, in the console.
    if (said[message]) return;
    said[message] = true;
    console.warn("django-progress-ui: " + message);
  }

  function streamless(section) {
    // Why the htmx on the page cannot show this component's stream, or "". The
    // stream's updates are <hx-partial> elements: htmx 4 and htmx 2.0.11 or later
    // apply them; an older htmx 2 (2.0.10 is django-htmx 1.29's) applies none, and
    // the bars would sit at "Waiting" while the stream runs.
    var htmx = window.htmx;
    var version = String((htmx && htmx.version) || "");
    var number = version.split(/[.-]/).map(Number); // "2.0.11", "4.0.0-beta6"
    var connect = section.closest("[data-progress-group]") || section.querySelector(".pui-stream");
    if (!version) return "htmx is not loaded";
    if (number[0] === 4) return "";
    if (number[0] !== 2 || (number[1] === 0 && number[2] < 11)) {
      return "htmx " + version + " cannot apply the stream's <hx-partial> updates " +
        "(htmx 2.0.11 or later, or htmx 4, can)";
    }
    if (connect && connect.hasAttribute("hx-sse:connect")) {
      return "the components have htmx 4 markup (PROGRESS_UI[\"HTMX_VERSION\"] = 4) " +
        "but the page loads htmx " + version;
    }
    if (!htmx.createEventSource) return "the SSE extension of htmx 2 (htmx-ext-sse) is not loaded";
    return "";
  }

  function watch(section) {
    // A live component polls at once when the page's htmx cannot show its
    // stream, or when it has heard nothing after WATCHDOG ms (no stream opened).
    if (section.dataset.puiPolling || section.dataset.puiWatched) return;
    section.dataset.puiWatched = "1";
    var problem = streamless(section);
    if (problem) {
      say(problem + ": the progress bars poll instead. See " + WHICH_HTMX);
      fallBack(section);
      return;
    }
    setTimeout(function () {
      if (!section.isConnected || section.dataset.puiReceived) return;
      if (!section.hasAttribute("data-progress-poll")) return;
      say("no update arrived over SSE within " + WATCHDOG / 1000 + " s (is the SSE " +
        "extension of htmx loaded? a proxy that buffers event streams?): polling instead.");
      fallBack(section);
    }, WATCHDOG);
  }

  var announced = {};

  function seen(sessionId) {
    // Once per session and tab; storage may be unavailable (privacy modes).
    if (announced[sessionId]) return true;
    announced[sessionId] = true;
    try {
      var key = "progress-ui:settled:" + sessionId;
      if (window.sessionStorage.getItem(key)) return true;
      window.sessionStorage.setItem(key, "1");
    } catch (error) { /* remembered for this page only */ }
    return false;
  }

  function announce(marker) {
    var section = marker.closest("[data-progress-session]");
    if (!section) return;
    var detail;
    try {
      detail = JSON.parse(marker.getAttribute("data-pui-outcome"));
    } catch (error) {
      return;
    }
    if (!detail || detail.sessionId !== section.getAttribute("data-progress-session")) return;
    settle(section, detail, marker.getAttribute("data-pui-text") || "");
  }

  function settle(section, detail, text) {
    if (seen(detail.sessionId)) return;
    var name = "progress:" + detail.status;
    var event = new CustomEvent(name, { bubbles: true, cancelable: true, detail: detail });
    var proceed = section.dispatchEvent(event);
    var wish = opted[detail.sessionId];
    if (wish && wish.wanted && window.Notification && Notification.permission === "granted") {
      try {
        new Notification(wish.name || pageTitle || document.title, {
          body: text, tag: "progress-ui:" + detail.sessionId
        });
      } catch (error) { /* a browser that shows them from service workers only */ }
    }
    var success = section.getAttribute("data-progress-success-url");
    if (proceed && success && detail.status === "complete") window.location.assign(success);
  }

  var opted = {}; // session id -> {title, notify: the button's label, name, wanted}
  var pageTitle = null; // the page's own title
  var shownTitle = null; // the last one written here

  function adopt(section) {
    var id = section.getAttribute("data-progress-session");
    var notify = section.getAttribute("data-progress-notify");
    var title = section.hasAttribute("data-progress-tab-title");
    if (!opted[id] && (title || notify)) {
      // The heading too, remembered: the same session rendered again by the
      // page (without a title) still names itself in the notification.
      var name = section.getAttribute("aria-label");
      opted[id] = { title: title, notify: notify, name: name, wanted: false };
    }
    if (opted[id] && opted[id].notify) offer(section, opted[id]);
  }

  function offer(section, wish) {
    // The button, on a live component, where the browser can still say yes.
    var stream = section.querySelector(".pui-stream");
    if (!window.Notification || Notification.permission === "denied") return;
    if (!stream || !section.hasAttribute("data-progress-poll")) return;
    if (section.querySelector(".pui-notify")) return;
    var button = document.createElement("button");
    button.type = "button";
    button.className = "pui-notify";
    button.textContent = wish.notify;
    button.setAttribute("aria-pressed", String(wish.wanted));
    button.addEventListener("click", function () {
      wish.wanted = !wish.wanted;
      button.setAttribute("aria-pressed", String(wish.wanted));
      if (!wish.wanted || Notification.permission === "granted") return;
      // Asked on the person's click only, never on load; refused: no button.
      Notification.requestPermission().then(function (answer) {
        wish.wanted = answer === "granted";
        button.setAttribute("aria-pressed", String(wish.wanted));
        if (answer === "denied") button.remove();
      });
    });
    stream.after(button);
  }

  function retitle() {
    // The first titled session still running, else the first settled one, before
    // the page's own title (which the page may change meanwhile).
    var shown = { running: "", settled: "" };
    if (document.title !== shownTitle) pageTitle = document.title;
    document.querySelectorAll("[data-progress-session]").forEach(function (section) {
      var wish = opted[section.getAttribute("data-progress-session")];
      var marker = wish && wish.title && section.querySelector("[data-pui-title]");
      if (!marker) return;
      var state = marker.hasAttribute("data-pui-outcome") ? "settled" : "running";
      shown[state] = shown[state] || marker.getAttribute("data-pui-title");
    });
    var text = shown.running || shown.settled;
    shownTitle = text && pageTitle ? text + " \u00b7 " + pageTitle : text || pageTitle;
    if (document.title !== shownTitle) document.title = shownTitle;
  }

  function each(root, selector, action) {
    // root itself (an element htmx added; not the document) and what it holds.
    if (root.matches && root.matches(selector)) action(root);
    root.querySelectorAll(selector).forEach(action);
  }

  function watchAll(root) {
    if (!root.querySelectorAll) return;
    each(root, "[data-pui-offline]", hideOfflineNotice);
    each(root, "[data-progress-session]", adopt);
    each(root, "[data-pui-outcome]", announce);
    each(root, "[data-progress-poll]", watch);
  }

  function onError(event) {
    sectionsOf(event.target).forEach(function (section) {
      if (section.dataset.puiPolling) return;
      var failures = Number(section.dataset.puiFailures || 0) + 1;
      section.dataset.puiFailures = String(failures);
      if (section.dataset.puiReceived && failures < FAILURES) return;
      fallBack(section);
    });
  }

  function onMessage(event) {
    sectionsOf(event.target).forEach(function (section) {
      section.dataset.puiReceived = "1";
      section.dataset.puiFailures = "0";
    });
  }

  document.addEventListener("htmx:sseError", onError); // htmx 2
  document.addEventListener("htmx:sse:error", onError); // htmx 4
  document.addEventListener("htmx:error", onError); // htmx 4: the first connection failed
  document.addEventListener("htmx:sseMessage", onMessage);
  document.addEventListener("htmx:sse:after:message", onMessage);

  // "progress-poll": a named event, which htmx 4 dispatches on the element and
  // htmx 2 only to listeners on its EventSource (added when it opens).
  document.addEventListener("progress-poll", function (event) {
    sectionsOf(event.target).forEach(fallBack);
  });
  document.addEventListener("htmx:sseOpen", function (event) {
    var source = event.detail && event.detail.source;
    if (!source || source.puiPollListener) return; // reopened: listening already
    source.puiPollListener = true;
    var target = event.target;
    source.addEventListener("progress-poll", function () { sectionsOf(target).forEach(fallBack); });
  });

  // A failed start answers htmx with a short alert (503 or 500, marked with
  // Progress-UI-Start-Failed): htmx 4 swaps error answers in by itself, htmx 2
  // only when told to, here. Without it the page would not change at all.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail && event.detail.xhr;
    if (xhr && xhr.getResponseHeader && xhr.getResponseHeader("Progress-UI-Start-Failed")) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  function warnIfHtmxTwice() {
    // Two copies of htmx (say django-htmx's {% htmx_script %} and
    // {% progress_scripts %}) break both, without an error of their own.
    var cores = Array.prototype.filter.call(document.scripts, function (script) {
      return /(^|\/)htmx(\.org)?(-[0-9.]+)?(\.min)?\.js(\?|$)/.test(script.src || "");
    });
    if (cores.length > 1) {
      console.error(
        "django-progress-ui: htmx is loaded " + cores.length + " times; live updates will " +
        "not work. Load it once: {% progress_scripts %} alone (with django-htmx, add " +
        "{% django_htmx_script %}), or django-htmx's {% htmx_script version=4 %} then " +
        "{% progress_scripts 4 htmx=False %}. See " + WHICH_HTMX
      );
    }
  }

  // Components on the page now, and any that htmx swaps in later. Not before
  // DOMContentLoaded: the htmx of the page (a deferred script, maybe after this
  // one) must have run before it is checked.
  var started = false;
  function start() {
    if (started) return;
    started = true;
    warnIfHtmxTwice();
    watchAll(document);
    if (Object.keys(opted).length) retitle();
    new MutationObserver(function (records) {
      records.forEach(function (record) {
        if (record.type === "attributes") each(record.target, "[data-pui-outcome]", announce);
        record.addedNodes.forEach(function (node) {
          if (node.nodeType === 1) watchAll(node);
        });
      });
      if (Object.keys(opted).length) retitle();
    }).observe(document.documentElement, {
      childList: true, subtree: true,
      attributes: true, attributeFilter: ["data-pui-title", "data-pui-outcome"]
    });
  }
  if (document.readyState === "complete") start();
  document.addEventListener("DOMContentLoaded", start);
  window.addEventListener("load", start); // a script added after DOMContentLoaded
})();
