// evaltray's review keys and error messages. No inline script anywhere: the page's CSP allows only this file
// and htmx.
(function () {
  "use strict";

  function flash(text) {
    var box = document.getElementById("flash");
    if (box) { box.textContent = text; box.hidden = !text; }
  }

  // An htmx request the server refused: show its message as text (parsed, never inserted as HTML).
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    var doc = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
    flash((doc.body && doc.body.textContent || "").trim() || "the server refused: " + xhr.status);
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.successful) { flash(""); }
  });

  function follow(id) {
    var link = document.getElementById(id);
    if (link) { window.location.href = link.getAttribute("href"); }
  }

  function focus(id) {
    var field = document.getElementById(id);
    if (field) { field.focus(); }
    return field;
  }

  function verdict(value) {
    var radio = document.querySelector('input[name="verdict"][value="' + value + '"]');
    if (!radio) {
      flash("Write the expected behaviour first: the output and the verdict come after it (blind review).");
      return;
    }
    radio.checked = true;
    radio.dispatchEvent(new Event("change", { bubbles: true }));
  }

  function submit(id) {
    var form = document.getElementById(id);
    if (form) { form.requestSubmit(); }
  }

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    var typing = target instanceof HTMLElement && target.matches("input, textarea, select");
    if (typing && event.key === "Escape") { target.blur(); return; }
    if (typing && event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      var show = document.getElementById("show-output");
      if (show && target.hasAttribute("data-expected")) { show.click(); } else if (target.form) { target.form.requestSubmit(); }
      return;
    }
    if (typing || event.ctrlKey || event.metaKey || event.altKey) { return; }
    var keys = {
      j: function () { follow("next-link"); },
      k: function () { follow("prev-link"); },
      p: function () { verdict("pass"); },
      f: function () { verdict("fail"); },
      e: function () { focus("critique"); },
      w: function () { focus("reference"); },
      s: function () { submit("review-form"); },
      r: function () { focus("reason"); },
      "?": function () { var k = document.getElementById("keys"); if (k) { k.hidden = !k.hidden; } }
    };
    if (Object.prototype.hasOwnProperty.call(keys, event.key)) {
      event.preventDefault();
      keys[event.key]();
    }
  });
})();
