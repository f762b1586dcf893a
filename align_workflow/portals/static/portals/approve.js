// Approve: picture the patient information and comments block with html2canvas, put it
// as a JPEG data URL into the hidden acceptance_screenshot field, then submit.
//
// The form carries the server's limits (data-max-bytes: ALIGN_SCREENSHOT_MAX_BYTES of
// base64 text; data-max-pixels: ALIGN_SCREENSHOT_MAX_PIXELS). The capture is made at the
// screen's devicePixelRatio unless that would exceed the pixel limit, then scaled down
// until its JPEG fits the byte limit, so a ratio-3 screen is not refused for its size.
(function () {
  "use strict";
  var form = document.getElementById("approve-form");
  var block = document.getElementById("acceptance-block");
  if (!form || !block) return;
  var button = document.getElementById("approve-button");
  var field = form.querySelector("input[name=acceptance_screenshot]");
  var maxBytes = parseInt(form.dataset.maxBytes, 10) || 0;
  var maxPixels = parseInt(form.dataset.maxPixels, 10) || 0;
  var QUALITY = 0.9;
  var SMALLER_QUALITY = 0.8;

  function encodedLength(dataUrl) {
    return dataUrl.length - dataUrl.indexOf(",") - 1;
  }

  // The devicePixelRatio, lowered if the block at that ratio would have too many pixels.
  function captureScale() {
    var ratio = Math.max(1, window.devicePixelRatio || 1);
    var width = Math.max(1, block.scrollWidth || block.offsetWidth);
    var height = Math.max(1, block.scrollHeight || block.offsetHeight);
    if (maxPixels && width * height * ratio * ratio > maxPixels) {
      ratio = Math.sqrt(maxPixels / (width * height)) * 0.98;
    }
    return ratio;
  }

  function shrunk(canvas, factor) {
    var smaller = document.createElement("canvas");
    smaller.width = Math.max(1, Math.floor(canvas.width * factor));
    smaller.height = Math.max(1, Math.floor(canvas.height * factor));
    var context = smaller.getContext("2d");
    context.fillStyle = "#ffffff";
    context.fillRect(0, 0, smaller.width, smaller.height);
    context.imageSmoothingEnabled = true;
    context.imageSmoothingQuality = "high";
    context.drawImage(canvas, 0, 0, smaller.width, smaller.height);
    return smaller;
  }

  // The canvas as a JPEG data URL within maxBytes, or null if it cannot be made to fit.
  function fitted(canvas) {
    var url = canvas.toDataURL("image/jpeg", QUALITY);
    for (var i = 0; maxBytes && encodedLength(url) > maxBytes && i < 8; i++) {
      // A JPEG's size follows its pixel count: shrink each side by the square root, with a margin.
      var factor = Math.min(0.9, Math.sqrt(maxBytes / encodedLength(url)) * 0.95);
      canvas = shrunk(canvas, factor);
      url = canvas.toDataURL("image/jpeg", SMALLER_QUALITY);
    }
    return maxBytes && encodedLength(url) > maxBytes ? null : url;
  }

  function reset(message) {
    button.disabled = false;
    button.textContent = "Approve plan";
    alert(message);
  }

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
    window.html2canvas(block, { backgroundColor: "#ffffff", scale: captureScale(), logging: false })
      .then(function (canvas) {
        var url = fitted(canvas);
        if (url === null) {
          reset("The approval picture is too large to send even when made smaller; nothing was sent. " +
                "Make the window narrower and try again.");
          return;
        }
        field.value = url;
        form.submit(); // does not fire "submit" again
      })
      .catch(function () {
        reset("The approval picture could not be made; nothing was sent. Try again.");
      });
  });
})();
