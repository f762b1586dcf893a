// Approve: picture the patient information and comments block with html2canvas, put it
// as a JPEG data URL into the hidden acceptance_screenshot field, then submit.
(function () {
  "use strict";
  var form = document.getElementById("approve-form");
  var block = document.getElementById("acceptance-block");
  if (!form || !block) return;
  var button = document.getElementById("approve-button");
  var field = form.querySelector("input[name=acceptance_screenshot]");

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (typeof window.html2canvas !== "function") {
      alert("The page did not load completely; reload it and approve again.");
      return;
    }
    button.disabled = true;
    button.textContent = "Saving approval…";
    var stamp = document.getElementById("approval-stamp");
    if (stamp) {
      var now = new Date();
      var offset = -now.getTimezoneOffset();
      var local = new Date(now.getTime() + offset * 60000).toISOString().slice(0, 19).replace("T", " ");
      var zone = "UTC" + (offset >= 0 ? "+" : "-") + String(Math.floor(Math.abs(offset) / 60)).padStart(2, "0") +
        ":" + String(Math.abs(offset) % 60).padStart(2, "0");
      stamp.textContent = "Approved by " + stamp.dataset.who + " on " + local + " (" + zone + ")";
      stamp.hidden = false;
    }
    window.html2canvas(block, { backgroundColor: "#ffffff", scale: Math.max(1, window.devicePixelRatio || 1), logging: false })
      .then(function (canvas) {
        field.value = canvas.toDataURL("image/jpeg", 0.9);
        form.submit(); // does not fire "submit" again
      })
      .catch(function () {
        button.disabled = false;
        button.textContent = "Approve plan";
        alert("The approval picture could not be made; nothing was sent. Try again.");
      });
  });
})();
