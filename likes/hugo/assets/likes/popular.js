/*
 * The most liked posts of a Hugo site, filled in by the browser.
 * No dependencies, no globals. Rendered by layouts/partials/likes/popular.html:
 *
 * <section data-likes-popular data-likes-limit="5" data-likes-label="likes" hidden>
 *   <ol></ol>
 *   <script type="application/json" data-likes-pages>[{"id", "title", "url"}, ...]</script>
 * </section>
 * <script src="popular.js" data-api="https://likes.example.com" data-lang="en" defer></script>
 *
 * The service answers ids and counts only; the page list written at build time
 * gives their titles and links. Posts the list does not know are skipped, so
 * the service is asked for more than are shown. Text goes in as text only.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) return;
  var api = (script.getAttribute("data-api") || "").replace(/\/+$/, "");
  var lang = script.getAttribute("data-lang") || document.documentElement.lang || "en";
  var MAX = 50; // the most /api/popular answers

  // Ids as Hugo writes them may be percent-encoded; the service answers with
  // the decoded NFC spelling (as the like widget sends them).
  function decode(id) {
    try {
      id = decodeURIComponent(id);
    } catch (e) {
      /* not percent-encoded after all */
    }
    return id.normalize ? id.normalize("NFC") : id;
  }

  function pagesOf(section) {
    var known = Object.create(null);
    var data = section.querySelector("script[data-likes-pages]");
    var rows = [];
    try {
      rows = JSON.parse(data ? data.textContent : "[]");
    } catch (e) {
      /* no page list: nothing to show */
    }
    if (!Array.isArray(rows)) rows = [];
    for (var i = 0; i < rows.length; i++) {
      // Pages sharing an id (see fullPathIds) share a count: the first is listed.
      var id = rows[i] && typeof rows[i].id === "string" ? decode(rows[i].id) : "";
      if (id && !(id in known)) known[id] = rows[i];
    }
    return known;
  }

  function number(n) {
    try {
      return n.toLocaleString(lang);
    } catch (e) {
      return String(n);
    }
  }

  function fill(section, popular) {
    var known = pagesOf(section);
    var limit = parseInt(section.getAttribute("data-likes-limit"), 10) || 5;
    var label = section.getAttribute("data-likes-label") || "likes";
    var list = section.querySelector("ol");
    var shown = 0;
    for (var i = 0; i < popular.length && shown < limit; i++) {
      var row = popular[i];
      var page = row && known[row.post_id];
      if (!page || typeof row.likes !== "number") continue;
      var item = document.createElement("li");
      var link = document.createElement("a");
      link.href = String(page.url);
      link.textContent = String(page.title || row.post_id);
      var count = document.createElement("span");
      count.className = "likes-popular-count";
      count.setAttribute("data-likes", String(row.likes));
      var heart = document.createElement("span");
      heart.className = "likes-popular-heart";
      heart.setAttribute("aria-hidden", "true");
      heart.textContent = "\u2665\uFE0E ";
      count.appendChild(heart);
      count.appendChild(document.createTextNode(number(row.likes)));
      var hidden = document.createElement("span");
      hidden.className = "likes-visually-hidden";
      hidden.textContent = " " + label;
      count.appendChild(hidden);
      item.appendChild(link);
      item.appendChild(document.createTextNode(" "));
      item.appendChild(count);
      list.appendChild(item);
      shown++;
    }
    if (shown) section.hidden = false;
  }

  var sections = [];
  document.querySelectorAll("[data-likes-popular]").forEach(function (section) {
    if (section.hasAttribute("data-likes-ready")) return;
    section.setAttribute("data-likes-ready", "");
    sections.push(section);
  });
  if (!sections.length || !api) return;

  var site = script.getAttribute("data-site");
  fetch(api + "/api/popular?limit=" + MAX + (site ? "&site=" + encodeURIComponent(site) : ""))
    .then(function (response) {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    })
    .then(function (popular) {
      if (!Array.isArray(popular)) throw new Error("unexpected answer");
      sections.forEach(function (section) {
        fill(section, popular);
      });
    })
    .catch(function (error) {
      console.warn("likes: the most liked posts are unavailable (" + api + ")", error);
    });
})();
