/* django-progress-ui: polling fallback.
 *
 * When a session's SSE connection fails before any message got through (a proxy
 * that blocks event streams, say; htmx 2 may not even retry), or fails FAILURES
 * times in a row later on, the component is replaced by its polled form (the fragment endpoint's
 * ?transport=poll, named in data-progress-poll), fetched every INTERVAL ms until
 * the session has finished. Removing the element closes its SSE connection in
 * both htmx 2 (htmx-ext-sse) and htmx 4 (hx-sse).
 */
(function () {
  "use strict";
  var FAILURES = 3;
  var INTERVAL = 2000;

  function sectionOf(target) {
    return target && target.closest ? target.closest("[data-progress-poll]") : null;
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
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
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

  function onError(event) {
    var section = sectionOf(event.target);
    if (!section || section.dataset.puiPolling) return;
    var failures = Number(section.dataset.puiFailures || 0) + 1;
    section.dataset.puiFailures = String(failures);
    if (section.dataset.puiReceived && failures < FAILURES) return;
    section.dataset.puiPolling = "1";
    poll(section.getAttribute("data-progress-session"), section.getAttribute("data-progress-poll"));
  }

  function onMessage(event) {
    var section = sectionOf(event.target);
    if (!section) return;
    section.dataset.puiReceived = "1";
    section.dataset.puiFailures = "0";
  }

  document.addEventListener("htmx:sseError", onError); // htmx 2
  document.addEventListener("htmx:sse:error", onError); // htmx 4
  document.addEventListener("htmx:error", onError); // htmx 4: the first connection failed
  document.addEventListener("htmx:sseMessage", onMessage);
  document.addEventListener("htmx:sse:after:message", onMessage);
})();
