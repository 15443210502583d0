// The dashboard's behaviour on top of server-rendered pages (each works without it).
(function () {
  "use strict";

  // --- Morphing swaps keep what the operator is doing --------------------------------
  // Polls answer with the server's view; idiomorph merges it into the page, keeping
  // focused, selected and scrolled elements. What the server cannot know is kept too:
  // values typed or ticked, which <details> are open, and an action's outcome until
  // it is dismissed.
  function keepOperatorState() {
    if (!window.Idiomorph) return;
    var callbacks = Idiomorph.defaults.callbacks;
    callbacks.beforeAttributeUpdated = function (name, element) {
      if (name === "open" && element.tagName === "DETAILS") return false;
      if ((name === "value" || name === "checked") && element.tagName === "INPUT" && element.type !== "hidden") return false;
      if (name === "value" && element.tagName === "TEXTAREA") return false;
      return true;
    };
    callbacks.beforeNodeMorphed = function (oldNode, newNode) {
      // A poll's empty outcome leaves the shown one in place; an action's new outcome replaces it.
      if (oldNode.nodeType === 1 && newNode.nodeType === 1 && oldNode.hasAttribute("data-outcome") && newNode.hasAttribute("data-empty")) return false;
      return true;
    };
  }

  // --- Times in the viewer's zone ----------------------------------------------------
  var pad = function (n) { return String(n).padStart(2, "0"); };
  var zone = (function () {
    try {
      var part = new Intl.DateTimeFormat(undefined, { timeZoneName: "short" }).formatToParts(new Date())
        .find(function (p) { return p.type === "timeZoneName"; });
      return part ? part.value : "";
    } catch (error) { return ""; }
  })();
  function localTime(date) {
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) + " " +
      pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds()) + (zone ? " " + zone : "");
  }
  function localiseTimes(root) {
    (root || document).querySelectorAll("time[datetime]").forEach(function (element) {
      var date = new Date(element.getAttribute("datetime"));
      if (isNaN(date)) return;
      var text = localTime(date);
      if (element.title !== text) element.title = text;
      if (element.hasAttribute("data-local") && element.textContent !== text) element.textContent = text;
    });
  }
  function tickCountdowns() {
    document.querySelectorAll("time[data-countdown]").forEach(function (element) {
      var left = Math.round((new Date(element.getAttribute("datetime")) - Date.now()) / 1000);
      element.textContent = left > 0 ? "in " + (left >= 60 ? Math.floor(left / 60) + "m " + pad(left % 60) + "s" : left + "s") : "due now";
    });
  }

  // --- Polling that never dies ---------------------------------------------------------
  // Each region marked data-poll is asked again POLL_MS after its last answer; a failed
  // ask (network error, server error, timeout) is retried with a growing delay, the
  // live-status says "reconnecting", and the first answer brings the page back to live.
  var POLL_MS = 2000, FIRST_RETRY_MS = 1000, MAX_RETRY_MS = 8000, PAUSED_CHECK_MS = 1000;
  var timers = {}, failures = {}, lastUpdate = Date.now(), pausedBecause = null;

  function pauseReason() {
    if (document.hidden) return "paused while the tab is hidden";
    var dialog = document.getElementById("confirm-dialog");
    if (dialog && dialog.open) return "paused while confirming";
    if (document.querySelector("input[name=ids]:checked, input[name=all_matching]:checked")) return "paused while selecting";
    return null;
  }
  function schedule(region, delay) {
    clearTimeout(timers[region.id]);
    timers[region.id] = setTimeout(function () { poll(region.id); }, delay);
  }
  function poll(id) {
    var region = document.getElementById(id);
    if (!region) return;
    pausedBecause = pauseReason();
    showStatus();
    if (pausedBecause) { schedule(region, PAUSED_CHECK_MS); return; }
    htmx.trigger(region, "jw:poll");
  }
  function answered(region, ok) {
    if (ok) { failures[region.id] = 0; lastUpdate = Date.now(); }
    else failures[region.id] = (failures[region.id] || 0) + 1;
    var n = failures[region.id];
    schedule(region, n ? Math.min(FIRST_RETRY_MS * Math.pow(2, n - 1), MAX_RETRY_MS) : POLL_MS);
    showStatus();
  }
  function failing() {
    return Object.keys(failures).some(function (id) { return failures[id] > 0; });
  }
  function ago(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    return s < 60 ? s + " s ago" : Math.floor(s / 60) + " min " + (s % 60) + " s ago";
  }
  function showStatus() {
    var status = document.querySelector("[data-testid=live-status]");
    if (!status) return;
    var since = "updated " + ago(Date.now() - lastUpdate);
    var state = failing() ? "reconnecting" : pausedBecause ? "paused" : "live";
    var text = state === "reconnecting" ? "Reconnecting… last " + since
      : state === "paused" ? "Live refresh " + pausedBecause + "; " + since
      : "Live · " + since;
    status.setAttribute("data-state", state);
    var label = status.querySelector(".live-text");
    if (label.textContent !== text) label.textContent = text;
  }

  document.addEventListener("htmx:afterRequest", function (event) {
    var region = event.detail.elt;
    if (region.hasAttribute && region.hasAttribute("data-poll") && region.id) answered(region, event.detail.successful);
  });
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) document.querySelectorAll("[data-poll][id]").forEach(function (region) { poll(region.id); });
  });

  // --- In-page confirmations ---------------------------------------------------------------
  // One <dialog> (templates/includes/confirm_dialog.html), filled from the form's or
  // button's data-confirm and data-confirm-button (made from webapp/actions.py).
  function ask(question, confirmLabel, onConfirm) {
    var dialog = document.getElementById("confirm-dialog");
    dialog.querySelector("#confirm-text").textContent = question;
    dialog.querySelector("[data-testid=confirm-action]").textContent = confirmLabel;
    dialog.returnValue = "";
    dialog.addEventListener("close", function closed() {
      dialog.removeEventListener("close", closed);
      showStatus();
      if (dialog.returnValue === "confirm") onConfirm();
    });
    dialog.showModal();
    showStatus();
  }

  document.addEventListener("htmx:confirm", function (event) {
    var element = event.detail.elt;
    var question = element.getAttribute && element.getAttribute("data-confirm");
    if (!question) return;
    event.preventDefault();
    ask(question, element.getAttribute("data-confirm-button") || "Confirm", function () { event.detail.issueRequest(true); });
  });

  // --- Bulk actions ---------------------------------------------------------------------------
  function selectedBoxes() { return document.querySelectorAll("input[name=ids][form=bulk-form]:checked"); }
  function updateBulk() {
    var form = document.getElementById("bulk-form");
    if (!form) return;
    var all = form.querySelector("input[name=all_matching]").checked;
    var boxes = document.querySelectorAll("input[name=ids][form=bulk-form]");
    var count = all ? Math.min(+form.dataset.matching, 1000) : selectedBoxes().length;
    form.querySelectorAll("button[name=action]").forEach(function (button) { button.disabled = count === 0; });
    form.querySelector("[data-testid=selected-count]").textContent =
      count ? count + " selected" + (all ? " (all matching)" : "") : "Nothing selected";
    form.classList.toggle("idle", count === 0);
    boxes.forEach(function (box) { box.closest("tr").classList.toggle("selected", box.checked || all); });
    var page = document.getElementById("select-page");
    if (page) {
      page.closest("label").hidden = false;
      var ticked = Array.prototype.filter.call(boxes, function (box) { return box.checked; }).length;
      page.checked = ticked > 0 && ticked === boxes.length;
      page.indeterminate = ticked > 0 && ticked < boxes.length;
    }
    pausedBecause = pauseReason();
    showStatus();
  }
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.id === "select-page") {
      document.querySelectorAll("input[name=ids][form=bulk-form]").forEach(function (box) { box.checked = target.checked; });
    }
    if (target.id === "select-page" || target.name === "ids" || target.name === "all_matching") updateBulk();
  });
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.id !== "bulk-form" || form.dataset.confirmed === "yes") return;
    event.preventDefault();
    var button = event.submitter;
    var all = form.querySelector("input[name=all_matching]").checked;
    var ids = Array.prototype.map.call(selectedBoxes(), function (box) { return "#" + box.value; });
    var count = all ? Math.min(+form.dataset.matching, 1000) : ids.length;
    if (!count || !button) return;
    var label = button.getAttribute("data-confirm-button");
    var which = all ? "all " + count + " matching jobs" : count + " job" + (count === 1 ? "" : "s") + " (" + ids.slice(0, 10).join(", ") + (ids.length > 10 ? ", …" : "") + ")";
    ask(label + ": " + which + "? " + button.getAttribute("data-consequence"), label + " " + count + " job" + (count === 1 ? "" : "s"), function () {
      form.dataset.confirmed = "yes";
      form.requestSubmit(button);
    });
  });

  // --- Filters apply as they are chosen ---------------------------------------------------------
  // A box as it is ticked, a text field when it is left or Enter is pressed.
  document.addEventListener("change", function (event) {
    var form = event.target.form;
    if (form && form.hasAttribute("data-auto-submit")) form.requestSubmit();
  });

  // --- Dismissing an action's outcome -----------------------------------------------------------
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-dismiss]");
    if (!button) return;
    var outcome = document.getElementById(button.getAttribute("data-dismiss"));
    if (outcome) { outcome.innerHTML = ""; outcome.setAttribute("data-empty", ""); }
  });

  // --- A refused form shows why ------------------------------------------------------------------
  // htmx swaps no 4xx answer; a form marked data-show-refusal gets its 400 region (which
  // names the field) swapped in, as a browser without JavaScript would show the page.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var source = (event.detail.requestConfig && event.detail.requestConfig.elt) || event.detail.elt;
    var form = source && source.closest && source.closest("form[data-show-refusal]");
    if (form && event.detail.xhr.status === 400) { event.detail.shouldSwap = true; event.detail.isError = false; }
  });

  document.addEventListener("htmx:afterSettle", function (event) { localiseTimes(event.detail.elt); updateBulk(); });

  function start() {
    keepOperatorState();
    // On a phone the filters start folded, so the first jobs are on the first screen.
    if (window.matchMedia("(max-width: 700px)").matches) {
      document.querySelectorAll("details[data-phone-closed]").forEach(function (box) { box.open = false; });
    }
    localiseTimes(document);
    updateBulk();
    document.querySelectorAll("[data-poll][id]").forEach(function (region) {
      if (!/\bload\b/.test(region.getAttribute("hx-trigger") || "")) schedule(region, POLL_MS);
    });
    showStatus();
    setInterval(function () { showStatus(); tickCountdowns(); }, 1000);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
