// Typed text survives a sign-in. A form marked data-keep-typed saves its text fields in
// sessionStorage (this tab only, never sent anywhere) when it is submitted; when the same
// page opens again and the action was not done (no success message), the text is put back
// into the still-empty fields, once. This is what keeps a cancel reason or revision
// comments typed just before the session expired.
(function () {
  "use strict";

  var KEY = "keep-typed:" + location.pathname;
  var MAX_AGE_MS = 60 * 60 * 1000;
  var FIELDS = "textarea, input[type=text]";

  function read() {
    try {
      var saved = JSON.parse(sessionStorage.getItem(KEY) || "null");
      sessionStorage.removeItem(KEY);
      return saved;
    } catch (e) {
      return null; // storage off (private mode, a policy): nothing kept, nothing breaks
    }
  }

  var saved = read();
  if (saved && Date.now() - saved.at < MAX_AGE_MS && !document.querySelector(".msg-success")) {
    Object.keys(saved.fields).forEach(function (id) {
      var field = document.getElementById(id);
      if (field && field.matches(FIELDS) && !field.value) {
        field.value = saved.fields[id];
        var details = field.closest("details");
        if (details) details.open = true;
      }
    });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches("form[data-keep-typed]")) return;
    var fields = {};
    form.querySelectorAll(FIELDS).forEach(function (field) {
      if (field.id && field.value.trim()) fields[field.id] = field.value;
    });
    try {
      sessionStorage.setItem(KEY, JSON.stringify({ at: Date.now(), fields: fields }));
    } catch (e) {
      /* storage full or off: the text cannot be kept */
    }
  });
})();
