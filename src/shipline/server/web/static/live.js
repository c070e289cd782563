// Live updates for the run page, over Server-Sent Events; the page reads fine without it.
// Text from the server is only ever set as textContent, never as HTML.
(function () {
  "use strict";

  function own(el, selector) {
    // Descendants of `el` matching `selector` that belong to it, not to a nested [data-live].
    return Array.prototype.filter.call(el.querySelectorAll(selector), function (found) {
      return found.closest("[data-live]") === el;
    });
  }

  function setBadge(live, badge) {
    document.querySelectorAll("[data-live]").forEach(function (el) {
      if (el.dataset.live !== live) return;
      Array.prototype.slice.call(el.classList).forEach(function (cls) {
        if (cls.indexOf("st-") === 0) el.classList.remove(cls);
      });
      el.classList.add("st-" + badge.key);
      own(el, ".icon").forEach(function (icon) { icon.textContent = badge.icon; });
      own(el, ".text").forEach(function (text) { text.textContent = badge.text; });
      var title = el.querySelector("title");
      if (title) title.textContent = title.textContent.replace(/: [^:]*$/, ": " + badge.text);
    });
  }

  function setDuration(live, value) {
    document.querySelectorAll("[data-duration]").forEach(function (el) {
      if (el.dataset.duration === live) el.textContent = value;
    });
  }

  function badgeElement(live, badge) {
    var span = document.createElement("span");
    span.className = "badge st-" + badge.key;
    span.dataset.live = live;
    var icon = document.createElement("span");
    icon.className = "icon";
    icon.setAttribute("aria-hidden", "true");
    icon.textContent = badge.icon;
    var text = document.createElement("span");
    text.className = "text";
    text.textContent = badge.text;
    span.append(icon, " ", text);
    return span;
  }

  function durationElement(live, value) {
    var span = document.createElement("span");
    span.className = "duration";
    span.dataset.duration = live;
    span.textContent = value;
    return span;
  }

  function find(selector, attribute, value) {
    return Array.prototype.find.call(document.querySelectorAll(selector), function (el) {
      return el.getAttribute(attribute) === value;
    });
  }

  function ensureJob(job) {
    var list = document.querySelector("[data-jobs]");
    if (!list || find("[data-job]", "data-job", job.live)) return;
    var empty = list.querySelector("li:not([data-job])");
    if (empty) empty.remove();
    var item = document.createElement("li");
    item.setAttribute("data-job", job.live);
    var line = document.createElement("div");
    line.className = "job-line";
    var link = document.createElement("a");
    link.href = job.href;
    link.textContent = job.name;
    line.append(link, " ", badgeElement(job.live, job.badge), " ", durationElement(job.live, job.duration));
    var steps = document.createElement("ol");
    steps.className = "steps";
    steps.setAttribute("data-steps", job.live);
    item.append(line, steps);
    list.append(item);
  }

  function ensureStep(job, step) {
    var steps = find("[data-steps]", "data-steps", job.live);
    if (!steps || find("[data-step-row]", "data-step-row", step.live)) return;
    var row = document.createElement("li");
    row.setAttribute("data-step-row", step.live);
    var name = document.createElement("span");
    name.className = "step-name";
    name.textContent = step.name;
    row.append(name, " ", badgeElement(step.live, step.badge), " ", durationElement(step.live, step.duration));
    steps.append(row);
  }

  function followRun(main) {
    var source = new EventSource(main.dataset.runEvents);
    source.addEventListener("update", function (event) {
      var data = JSON.parse(event.data);
      setBadge(data.run.live, data.run.badge);
      setDuration(data.run.live, data.run.duration);
      data.jobs.forEach(function (job) {
        ensureJob(job);
        setBadge(job.live, job.badge);
        setDuration(job.live, job.duration);
        job.steps.forEach(function (step) {
          ensureStep(job, step);
          setBadge(step.live, step.badge);
          setDuration(step.live, step.duration);
        });
      });
    });
    source.addEventListener("end", function () {
      source.close();
      document.querySelectorAll("[data-while]").forEach(function (el) {
        el.hidden = el.dataset.while !== "completed";
      });
    });
  }

  function stepBlock(log, step) {
    var key = step === null ? "" : String(step);
    var block = find("details[data-step]", "data-step", key);
    if (!block) {
      var empty = log.querySelector("[data-empty]");
      if (empty) empty.remove();
      block = document.createElement("details");
      block.setAttribute("data-step", key);
      block.open = true;
      var summary = document.createElement("summary");
      var name = document.createElement("span");
      name.className = "step-name";
      name.textContent = step === null ? "Set up job" : "Step " + (step + 1);
      summary.append(name);
      var lines = document.createElement("div");
      lines.className = "lines";
      block.append(summary, lines);
      log.append(block);
    }
    return block.querySelector(".lines");
  }

  function lineElement(line) {
    var row = document.createElement("div");
    row.className = "line";
    row.id = "L" + line.n;
    var number = document.createElement("a");
    number.className = "ln";
    number.href = "#L" + line.n;
    number.textContent = String(line.n);
    var text = document.createElement("span");
    text.className = "lt";
    line.segs.forEach(function (seg) {
      var span = document.createElement("span");
      if (seg[0]) span.className = seg[0];
      span.textContent = seg[1];
      text.append(span);
    });
    row.append(number, text);
    return row;
  }

  function followLog(panel) {
    var log = panel.querySelector("[data-log]");
    var source = new EventSource(panel.dataset.tail);
    source.addEventListener("lines", function (event) {
      var data = JSON.parse(event.data);
      var target = stepBlock(log, data.step);
      var nearBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
      data.lines.forEach(function (line) { target.append(lineElement(line)); });
      if (nearBottom) target.lastElementChild.scrollIntoView({ block: "end" });
    });
    source.addEventListener("end", function () { source.close(); });
  }

  function openTarget() {
    // A #L12 link into a closed step opens it.
    var id = decodeURIComponent(location.hash.slice(1));
    var line = id ? document.getElementById(id) : null;
    var details = line ? line.closest("details") : null;
    if (details && !details.open) {
      details.open = true;
      line.scrollIntoView();
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var main = document.querySelector("main[data-run-events]");
    if (main && window.EventSource) followRun(main);
    var panel = document.querySelector("[data-tail]");
    if (panel && window.EventSource) followLog(panel);
    openTarget();
    window.addEventListener("hashchange", openTarget);
  });
})();
