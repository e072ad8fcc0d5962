/* django-progress-ui: polling fallback.
 *
 * A component either streams or polls, never neither:
 * - when a session's SSE connection fails before any message got through (a
 *   proxy that blocks event streams, say; htmx 2 may not even retry), or fails
 *   FAILURES times in a row later on;
 * - or when no message arrives within WATCHDOG ms (the server sends the current
 *   state as soon as a stream opens, so silence means no stream was opened),
 * the component is replaced by its polled form (the fragment endpoint's
 * ?transport=poll, named in data-progress-poll), fetched every INTERVAL ms until
 * the session has finished. Removing the element closes its SSE connection in
 * both htmx 2 (htmx-ext-sse) and htmx 4 (hx-sse).
 * A server that cannot keep a stream open answers 503 (too many streams: the
 * connection fails, as above) or ends it with a "progress-poll" event (a WSGI
 * stream past WSGI_MAX_STREAM_DURATION): the component polls from then on.
 * A poll answered 404 (the session expired, or is not this visitor's) stops
 * polling and shows the expired text (data-progress-expired). The component's
 * "live updates are unavailable" notice is hidden here: without this script it
 * stays visible.
 * Several components can share one connection: a group element
 * (data-progress-group, rendered by {% progress_group %}) connects once, and its
 * components have none of their own. Events of that connection fire on the
 * group, so sectionsOf() maps them to every component in it; when the shared
 * connection fails, the group element is replaced by a plain one holding the same
 * components (which closes the connection) and each component polls on its own.
 */
(function () {
  "use strict";
  var FAILURES = 3;
  var INTERVAL = 2000;
  var WATCHDOG = 6000;

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

  function current(sessionId) {
    // Looked up on every poll: htmx may have swapped the element meanwhile.
    return document.querySelector('[data-progress-session="' + sessionId + '"]');
  }

  function poll(sessionId, url) {
    // HX-Request: the server then leaves out the <noscript> refresh, which would
    // come alive in markup parsed with scripting off.
    fetch(url, { headers: { "HX-Request": "true" }, credentials: "same-origin" })
      .then(function (response) {
        if (response.status === 404) {
          expire(sessionId);
          return null;
        }
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        if (html === null) return;
        var section = current(sessionId);
        var next = new DOMParser().parseFromString(html, "text/html").body.firstElementChild;
        if (!section || !next) return; // the component left the page
        next.dataset.puiPolling = "1";
        section.replaceWith(next);
        if (next.hasAttribute("data-progress-poll")) {
          setTimeout(function () { poll(sessionId, url); }, INTERVAL);
        }
      })
      .catch(function () {
        if (current(sessionId)) setTimeout(function () { poll(sessionId, url); }, INTERVAL * 2);
      });
  }

  function expire(sessionId) {
    // Gone for good: no more polls; say so where the status sentence is.
    var section = current(sessionId);
    if (!section) return;
    section.removeAttribute("data-progress-poll");
    section.classList.add("pui-session--expired");
    var status = section.querySelector(".pui-status");
    if (status) status.textContent = section.getAttribute("data-progress-expired") || "";
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
    poll(section.getAttribute("data-progress-session"), section.getAttribute("data-progress-poll"));
  }

  function hideOfflineNotice(root) {
    // The notice shows when this script never ran (static files not served, a
    // blocked script): the bars would otherwise sit frozen without a word.
    if (root.querySelectorAll) {
      root.querySelectorAll("[data-pui-offline]").forEach(function (notice) {
        notice.hidden = true;
      });
    }
  }

  function watch(section) {
    // A live component that has heard nothing after WATCHDOG ms never got a stream.
    if (section.dataset.puiPolling || section.dataset.puiWatched) return;
    section.dataset.puiWatched = "1";
    setTimeout(function () {
      if (!section.isConnected || section.dataset.puiReceived) return;
      if (section.hasAttribute("data-progress-poll")) fallBack(section);
    }, WATCHDOG);
  }

  function watchAll(root) {
    hideOfflineNotice(root);
    if (root.matches && root.matches("[data-progress-poll]")) watch(root);
    if (root.querySelectorAll) root.querySelectorAll("[data-progress-poll]").forEach(watch);
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

  function warnIfHtmxTwice() {
    // Two copies of htmx (say django-htmx's {% htmx_script %} and
    // {% progress_scripts %}) break both, without an error of their own.
    var cores = Array.prototype.filter.call(document.scripts, function (script) {
      return /(^|\/)htmx(\.org)?(-[0-9.]+)?(\.min)?\.js(\?|$)/.test(script.src || "");
    });
    if (cores.length > 1) {
      console.error(
        "django-progress-ui: htmx is loaded " + cores.length + " times; live updates will " +
        "not work. Load it once: {% progress_scripts htmx=False %} after {% htmx_script %}."
      );
    }
  }

  // Components on the page now, and any that htmx swaps in later.
  function start() {
    warnIfHtmxTwice();
    watchAll(document);
    new MutationObserver(function (records) {
      records.forEach(function (record) {
        record.addedNodes.forEach(function (node) {
          if (node.nodeType === 1) watchAll(node);
        });
      });
    }).observe(document.documentElement, { childList: true, subtree: true });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
