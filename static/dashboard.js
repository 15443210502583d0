// Load polling for the regions marked data-poll: each answer carries its own next
// trigger, so a slow answer never piles up requests. A poll that would disturb the
// operator (tab hidden, a confirm open, rows selected, a field being typed in)
// is held back and tried again a little later.
(function () {
  "use strict";
  var confirming = false;
  var RETRY_MS = 1000;

  function busy(region) {
    if (document.hidden || confirming) return true;
    if (region.querySelector("input[type=checkbox]:checked")) return true;
    var active = document.activeElement;
    return !!(active && region.contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName));
  }

  document.addEventListener("htmx:confirm", function () { confirming = true; });
  document.addEventListener("htmx:beforeRequest", function (event) {
    var region = event.detail.elt;
    confirming = false;
    if (!region.hasAttribute || !region.hasAttribute("data-poll")) return;
    if (busy(region)) {
      event.preventDefault();
      setTimeout(function () {
        if (document.body.contains(region)) htmx.trigger(region, "jw:poll");
      }, RETRY_MS);
    }
  });
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) return;
    document.querySelectorAll("[data-poll]").forEach(function (region) { htmx.trigger(region, "jw:poll"); });
  });
})();

// Bulk actions: confirm with the number of jobs they touch (the selection, or all matching).
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.id !== "bulk-form") return;
    var button = event.submitter;
    var all = form.querySelector("input[name=all_matching]").checked;
    var count = all ? Math.min(+form.dataset.matching, 1000)
                    : document.querySelectorAll("input[name=ids][form=bulk-form]:checked").length;
    var verb = button ? button.textContent.replace(/ selected$/, "").replace(/ selected as /, " as ") : "Act on";
    if (!confirm(verb + " " + count + " job" + (count === 1 ? "" : "s") + "?")) event.preventDefault();
  });
})();
