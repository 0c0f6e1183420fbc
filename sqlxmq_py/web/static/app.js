// sqlxmq dashboard: confirmations, "select all", and an optional auto-refresh. No inline
// script anywhere (the Content-Security-Policy forbids it).
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  // Forms and buttons with data-confirm ask before submitting.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var button = event.submitter;
    var question = (button && button.getAttribute("data-confirm")) || form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  var all = document.getElementById("select-all");
  if (all) {
    all.addEventListener("change", function () {
      document.querySelectorAll("input.pick").forEach(function (box) { box.checked = all.checked; });
    });
  }

  var refresh = document.getElementById("autorefresh");
  if (refresh) {
    var key = "sqlxmq.autorefresh";
    var timer = null;
    var arm = function () {
      if (timer) { window.clearTimeout(timer); timer = null; }
      if (refresh.checked) { timer = window.setTimeout(function () { window.location.reload(); }, 5000); }
    };
    // on unless turned off (the choice is remembered in this browser)
    try { refresh.checked = window.localStorage.getItem(key) !== "0"; } catch (e) { refresh.checked = true; }
    refresh.addEventListener("change", function () {
      try { window.localStorage.setItem(key, refresh.checked ? "1" : "0"); } catch (e) { /* storage off */ }
      arm();
    });
    arm();
  }
});
