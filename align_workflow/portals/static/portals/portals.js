// Shared by the portal pages: double-click guard, live case status, timeline filter. No framework.
(function () {
  "use strict";

  // A submitted action button is disabled at once, so a double click sends one request.
  document.addEventListener("submit", function (event) {
    if (event.defaultPrevented || event.target.method.toLowerCase() !== "post") return;
    var button = event.submitter || event.target.querySelector("button[type=submit]");
    if (button) {
      setTimeout(function () { button.disabled = true; }, 0);
    }
  });

  // Case pages carry data-status-url: while the case can still move, ask the server
  // every few seconds whether anything changed, and reload when it did. Someone in the
  // middle of typing gets a banner instead of losing their text.
  var body = document.body;
  var url = body.dataset.statusUrl;
  if (!url) return;
  var stamp = body.dataset.stamp;
  var banner = document.getElementById("changed-banner");

  function typing() {
    // Changed from what the page was served with (a prefilled form is not typing).
    var fields = document.querySelectorAll("textarea, input[type=text], input[type=email], input[type=search]");
    for (var i = 0; i < fields.length; i++) {
      if (fields[i].value.trim() !== fields[i].defaultValue.trim()) return true;
    }
    return false;
  }

  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (data && data.stamp !== stamp) {
          stamp = data.stamp;
          if (typing()) {
            banner.hidden = false;
          } else {
            window.location.reload();
            return;
          }
        }
        schedule();
      })
      .catch(schedule);
  }

  function schedule() {
    setTimeout(poll, document.hidden ? 15000 : 2000);
  }

  schedule();
})();

// The timeline's filter buttons: show one kind of entry (or only failures).
(function () {
  "use strict";
  var filter = document.querySelector(".tl-filter");
  var timeline = document.getElementById("timeline");
  if (!filter || !timeline) return;
  filter.hidden = false;
  filter.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-kind]");
    if (!button) return;
    var kind = button.dataset.kind;
    filter.querySelectorAll("button").forEach(function (b) { b.classList.toggle("active", b === button); });
    timeline.querySelectorAll("li").forEach(function (li) {
      var show = !kind || li.classList.contains(kind === "failed" ? "tl-failed" : "tl-" + kind);
      li.hidden = !show;
    });
  });
})();
