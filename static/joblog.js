// The job page's log (templates/jobs/_log.html): follows a running attempt live.
// Every FOLLOW_MS it asks only for what the page does not have (from data-offset) and
// appends the server's escaped lines. While the reader has scrolled up or selected text in
// the log it stops scrolling to the end and says so; scrolling back to the end resumes.
// Where the reader is when lines arrive decides, not the last scroll event: the browser
// reports a scroll a frame later, and lines landing in between would leave a reader who
// reached the end paused for good.
// It stops asking once the attempt has ended; a failed ask is retried with backoff.
// When the job region (polled) then names a newer attempt than any the page knew, the panel is
// asked for again (an HTMX request aimed at #log) and follows that attempt from its start,
// unless the reader chose the attempt shown (a number in the address) or reads above: then
// it says a newer attempt began, with a link to its log.
(function () {
  "use strict";
  var FOLLOW_MS = 500, MAX_RETRY_MS = 8000, AT_END_PX = 4;

  // Whether the job is still live (the job region, polled, says so): an attempt an operator or the
  // monitor ended is followed until its worker confirms the stop, but it is not running.
  function jobLive() {
    var region = document.getElementById("job-region");
    return !region || region.getAttribute("data-live") !== "0";
  }

  function newestAttempt() {
    var region = document.getElementById("job-region");
    return region ? Number(region.getAttribute("data-latest-attempt")) || 0 : 0;
  }

  function start(log) {
    if (log.hasAttribute("data-following")) return;  // the first page's htmx:load
    log.setAttribute("data-following", "");
    var panel = log.closest("section");
    var state = panel.querySelector("[data-testid='log-follow']");
    var url = new URL(log.getAttribute("data-log-url"), document.baseURI);
    var offset = Number(log.getAttribute("data-offset")) || 0;
    var delay = FOLLOW_MS, waiting = 0, timer = null, switching = false;
    var known = Math.max(newestAttempt(), Number(panel.getAttribute("data-attempt")) || 0);

    function say(key, text) {
      if (!state) return;
      if (state.getAttribute("data-state") !== key) state.setAttribute("data-state", key);
      if (state.textContent !== text) state.textContent = text;
    }
    function atEnd() { return log.scrollHeight - log.scrollTop - log.clientHeight <= AT_END_PX; }
    function selecting() {
      var selection = window.getSelection();
      return !!selection && !selection.isCollapsed && log.contains(selection.anchorNode);
    }
    function paused() { return selecting() || !atEnd(); }
    function ended() { return log.getAttribute("data-final") === "1"; }
    // Whether a newer attempt than the page knew has begun; if so, followed or offered.
    function newer() {
      var newest = newestAttempt();
      if (newest <= known) return false;
      var address = panel.getAttribute("data-panel-url") + "?log_attempt=" + newest;
      if (panel.getAttribute("data-chosen") === "1" || paused()) {
        if (state && state.getAttribute("data-state") !== "newer-" + newest) {
          state.setAttribute("data-state", "newer-" + newest);
          state.textContent = "This attempt has ended; attempt " + newest + " has begun: ";
          var link = document.createElement("a");
          link.href = address + "#log";
          link.textContent = "follow its log";
          state.append(link, ".");
        }
      } else if (!switching) {
        switching = true;
        var again = function () { switching = false; };
        htmx.ajax("GET", address, { target: "#log", swap: "outerHTML" }).then(again, again);
      }
      return true;
    }
    function describe(over) {
      if (over) { if (!newer()) say("ended", "This attempt has ended."); return; }
      if (paused()) {
        var why = selecting() ? "while text is selected" : "while you read above; scroll to the end to follow again";
        say("paused", "Paused " + why + (waiting ? " (" + waiting + " new lines below)." : "."));
      } else {
        say("following", state ? state.getAttribute(jobLive() ? "data-running-text" : "data-stopping-text") : "");
      }
    }
    log.addEventListener("scroll", function () {
      if (atEnd()) waiting = 0;
      describe(ended());
    });
    document.addEventListener("selectionchange", function () { if (log.isConnected) describe(ended()); });
    document.addEventListener("htmx:afterSettle", function () { if (log.isConnected && ended()) describe(true); });

    function ask() {
      url.searchParams.set("offset", String(offset));
      fetch(url.toString(), { headers: { Accept: "text/html" }, credentials: "same-origin", cache: "no-store" })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.text().then(function (html) { return { html: html, headers: response.headers }; });
        })
        .then(function (answer) {
          var attempt = answer.headers.get("X-Log-Attempt");
          if (attempt && !url.searchParams.get("attempt")) {
            url.searchParams.set("attempt", attempt);
            known = Math.max(known, Number(attempt));
          }
          var follow = !paused();
          if (follow) waiting = 0;
          if (answer.html.trim()) {
            var empty = log.parentNode.querySelector(".log-empty");
            if (empty) empty.remove();
            log.insertAdjacentHTML("beforeend", answer.html);  // the server's escaped lines
            if (!follow) waiting += (answer.html.match(/class="log-line"/g) || []).length;
          }
          offset = Number(answer.headers.get("X-Log-Next-Offset")) || offset;
          log.setAttribute("data-offset", String(offset));
          if (follow) log.scrollTop = log.scrollHeight;
          var over = answer.headers.get("X-Log-Final") === "1";
          log.setAttribute("data-final", over ? "1" : "0");
          describe(over);
          delay = FOLLOW_MS;
          if (!over) timer = setTimeout(ask, delay);
        })
        .catch(function () {
          say("reconnecting", "Reconnecting…");
          delay = Math.min(delay * 2, MAX_RETRY_MS);
          timer = setTimeout(ask, delay);
        });
    }
    log.scrollTop = log.scrollHeight;
    if (log.getAttribute("data-final") !== "1") timer = setTimeout(ask, FOLLOW_MS);
    return timer;
  }

  function init() {
    var log = document.querySelector("[data-testid='job-log'][data-log-url]");
    if (log) start(log);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
  document.addEventListener("htmx:load", function (event) {  // a newer attempt's panel, swapped in
    var log = event.target.querySelector && event.target.querySelector("[data-testid='job-log'][data-log-url]");
    if (log) start(log);
  });
})();
