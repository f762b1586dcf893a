// Confirmations before irreversible actions: a form with data-confirm="<dialog id>" opens
// that <dialog> instead of being sent; "Yes" sends it with confirm=1, "No" or Escape
// sends nothing. Without JavaScript the server asks on a page of its own (confirm=1 absent).
(function () {
  "use strict";

  function field(form) {
    return form.querySelector("input[name=confirm]");
  }

  // Runs before the form's own submit handlers (capture on the document): a form not yet
  // confirmed goes no further than the dialog.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var dialog = form.dataset && form.dataset.confirm ? document.getElementById(form.dataset.confirm) : null;
    var confirmed = field(form);
    if (!dialog || !confirmed || confirmed.value === "1") return;
    event.preventDefault();
    event.stopPropagation();
    dialog.confirmingForm = form;
    dialog.confirmingButton = event.submitter || null;
    dialog.showModal();
  }, true);

  document.querySelectorAll("dialog.confirm").forEach(function (dialog) {
    dialog.querySelector("[data-confirm-no]").addEventListener("click", function () {
      dialog.close();
    });
    dialog.querySelector("[data-confirm-yes]").addEventListener("click", function () {
      var form = dialog.confirmingForm;
      dialog.close();
      if (!form) return;
      field(form).value = "1";
      form.requestSubmit(dialog.confirmingButton);
    });
    dialog.addEventListener("close", function () {
      var button = dialog.confirmingButton;
      if (button) button.focus();
    });
  });

  // Back to a page from the browser's cache: every action asks again.
  window.addEventListener("pageshow", function () {
    document.querySelectorAll("form[data-confirm] input[name=confirm]").forEach(function (input) {
      input.value = "";
    });
  });
})();
