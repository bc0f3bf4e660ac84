// The live preview of a filter on the subscribe and preferences forms: as topics and
// queries change, ask /preview.json and show what the last 7 days would have brought.
// Builds the DOM with textContent only (no HTML from the server); the Preview button
// remains the way without JavaScript.
(function () {
  "use strict";
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function highlighted(tag, parts) {
    var node = el(tag);
    parts.forEach(function (part) {
      node.appendChild(part[1] ? el("mark", "", part[0]) : document.createTextNode(part[0]));
    });
    return node;
  }
  function show(box, data) {
    box.replaceChildren();
    if (data.error) {
      var error = el("pre", "error", data.error);
      error.id = "preview-error";
      box.appendChild(error);
      return;
    }
    var total = el("p", "preview-total", data.summary);
    total.id = "preview-total";
    box.appendChild(total);
    var days = el("ul", "preview-days");
    data.days.forEach(function (d) {
      var li = el("li");
      li.appendChild(el("span", "", d.label));
      li.appendChild(document.createTextNode(" "));
      li.appendChild(el("strong", "", String(d.count)));
      days.appendChild(li);
    });
    box.appendChild(days);
    var top = el("ol", "preview-top");
    data.top.forEach(function (item) {
      var li = el("li");
      var link = highlighted("a", item.title);
      link.href = item.url || "#";
      li.appendChild(link);
      li.appendChild(el("p", "small", item.meta));
      li.appendChild(el("p", "why", "Why: " + item.why));
      top.appendChild(li);
    });
    box.appendChild(top);
  }
  function setup(form) {
    var box = form.querySelector("#preview");
    var queries = form.querySelector("textarea[name=queries]");
    if (!box || !queries) return;
    var timer = null;
    var asked = 0;
    function update() {
      var params = new URLSearchParams();
      form.querySelectorAll("input[name=topic]:checked").forEach(function (input) {
        params.append("topic", input.value);
      });
      params.set("queries", queries.value);
      var mine = ++asked;
      fetch("/preview.json?" + params.toString(), { headers: { accept: "application/json" } })
        .then(function (response) { return response.json(); })
        .then(function (data) { if (mine === asked) show(box, data); })
        .catch(function () { /* the Preview button still works */ });
    }
    function soon() {
      clearTimeout(timer);
      timer = setTimeout(update, 250);
    }
    queries.addEventListener("input", soon);
    form.querySelectorAll("input[name=topic]").forEach(function (input) {
      input.addEventListener("change", soon);
    });
    form.setAttribute("data-live", "on");
  }
  document.querySelectorAll("form[data-preview]").forEach(setup);
})();
