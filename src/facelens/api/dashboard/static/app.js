// facelens dashboard: the live feed (Server-Sent Events), local times, confirmations,
// photo previews and busy buttons. Pages work without it, except the live updates.
"use strict";

(function () {
  var MAX_FEED = 100;

  function localTimes(root) {
    var today = new Date().toDateString();
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (isNaN(when)) return;
      el.title = when.toLocaleString();
      el.textContent = when.toDateString() === today
        ? when.toLocaleTimeString()
        : when.toLocaleString();
    });
  }

  function setStatus(state, text) {
    var status = document.getElementById("live-status");
    if (!status) return;
    status.setAttribute("data-state", state);
    status.querySelector(".live-status__text").textContent = text;
  }

  function startFeed(list) {
    if (!window.EventSource) {
      setStatus("down", "Live updates need a newer browser; reload to refresh.");
      return;
    }
    var url = list.getAttribute("data-stream") + "?after=" +
      encodeURIComponent(list.getAttribute("data-after") || "");
    var source = new EventSource(url);
    source.onopen = function () { setStatus("live", "Live"); };
    source.onerror = function () {
      setStatus("down", source.readyState === EventSource.CLOSED ? "Disconnected" : "Reconnecting…");
    };
    source.addEventListener("sighting", function (event) {
      var data = JSON.parse(event.data);
      // One row per visit: a revision replaces its visit's row (and moves it to the top);
      // the same answer again, or an older revision arriving late, changes nothing.
      var existing = document.getElementById(data.row || ("s-" + data.id));
      if (existing && (existing.getAttribute("data-id") === data.id ||
          Number(existing.getAttribute("data-revision") || 0) > Number(data.revision || 0))) return;
      var holder = document.createElement("ol");
      holder.innerHTML = data.html; // rendered and escaped by the server's templates
      var item = holder.firstElementChild;
      if (!item) return;
      item.classList.add("sighting--new");
      localTimes(item);
      if (existing) existing.parentNode.removeChild(existing);
      list.insertBefore(item, list.firstChild);
      while (list.children.length > MAX_FEED) list.removeChild(list.lastElementChild);
      var empty = document.getElementById("feed-empty");
      if (empty) empty.hidden = true;
    });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  function confirmations() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
      });
    });
  }

  function busyButtons() {
    document.querySelectorAll("form[data-busy]").forEach(function (form) {
      form.addEventListener("submit", function () {
        var button = form.querySelector("button[type=submit]:not(.visually-hidden)");
        if (!button) return;
        button.setAttribute("aria-busy", "true");
        button.textContent = form.getAttribute("data-busy");
        // Disable after the submit has been taken, so the button's value still goes.
        window.setTimeout(function () { button.disabled = true; }, 0);
      });
    });
  }

  function previews() {
    document.querySelectorAll("input[type=file][data-preview]").forEach(function (input) {
      var target = document.getElementById(input.getAttribute("data-preview"));
      if (!target || !window.URL || !URL.createObjectURL) return;
      input.addEventListener("change", function () {
        target.querySelectorAll("img").forEach(function (img) { URL.revokeObjectURL(img.src); });
        target.textContent = "";
        Array.prototype.slice.call(input.files || [], 0, 20).forEach(function (file) {
          var img = document.createElement("img");
          img.src = URL.createObjectURL(file);
          img.alt = "Preview of " + file.name;
          target.appendChild(img);
        });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    confirmations();
    busyButtons();
    previews();
    var feed = document.getElementById("feed");
    if (feed && feed.hasAttribute("data-stream")) startFeed(feed);
  });
})();
