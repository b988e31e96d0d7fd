/*
 * Like button for static sites. No dependencies, no globals.
 *
 * <script src="https://api.example.com/static/likes/likes.js"
 *         data-api="https://api.example.com" data-lang="en" defer></script>
 *
 * Buttons:   <button type="button" data-likes-post="my-post">…
 *              <span data-likes-count></span></button>
 * Counts:    <span data-likes-count="my-post"></span>  (list pages)
 * Optional:  data-label-like / data-label-unlike on the script tag.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var root = document.documentElement;
  if (!script || root.hasAttribute("data-likes-loaded")) return;
  root.setAttribute("data-likes-loaded", "");

  var data = script.dataset;
  var api = (data.api || new URL(script.src).origin).replace(/\/+$/, "");
  var LABELS = {
    en: { like: "Like", unlike: "Unlike" },
    es: { like: "Me gusta", unlike: "Ya no me gusta" },
  };
  var lang = (data.lang || root.lang || "en").slice(0, 2).toLowerCase();
  var labels = LABELS[lang] || LABELS.en;
  var likeLabel = data.labelLike || labels.like;
  var unlikeLabel = data.labelUnlike || labels.unlike;
  var BATCH = 100;
  var warned = false;

  function warn(error) {
    if (!warned) {
      warned = true;
      console.warn("likes: the likes service is unreachable", error);
    }
  }

  // The id as it reached the page may be percent-encoded (Hugo permalinks);
  // the service wants it decoded, then encoded once in the URL, and answers
  // with its one spelling (NFC): "café" composed or decomposed is one post.
  function decode(id) {
    try {
      id = decodeURIComponent(id);
    } catch (e) {
      /* not percent-encoded after all */
    }
    return id.normalize ? id.normalize("NFC") : id;
  }

  function stored(id, prefix) {
    try {
      return localStorage.getItem((prefix || "likes:") + id);
    } catch (e) {
      return null;
    }
  }

  function store(id, value, prefix) {
    var key = (prefix || "likes:") + id;
    try {
      if (value === null) localStorage.removeItem(key);
      else localStorage.setItem(key, value);
    } catch (e) {
      /* private mode: the state lasts for the page only */
    }
  }

  // Count reads may come from the browser's or the CDN's cache for a few
  // seconds (LIKES_READ_CACHE_SECONDS). For FRESH ms after this browser liked
  // or unliked a post, its counts are fetched past the browser's cache, and
  // never shown below the count its like answered (above, its unlike): the
  // visitor always sees their own click counted.
  var FRESH = 120000;

  function remember(id, likes, liked) {
    store(id, [likes, Date.now(), liked ? "+" : "-"].join(","), "likes-count:");
  }

  function recent(id) {
    var value = (stored(id, "likes-count:") || "").split(",");
    if (!(Date.now() - parseInt(value[1], 10) < FRESH)) return null;
    return { likes: parseInt(value[0], 10), liked: value[2] === "+" };
  }

  function consistent(id, likes) {
    var own = recent(id);
    if (!own) return likes;
    return own.liked ? Math.max(likes, own.likes) : Math.min(likes, own.likes);
  }

  function counters(id) {
    var found = [];
    document.querySelectorAll("[data-likes-post],[data-likes-count]").forEach(function (el) {
      if (idOf(el) === id) found.push(el);
    });
    return found;
  }

  function idOf(el) {
    return decode(el.getAttribute("data-likes-post") || el.getAttribute("data-likes-count") || "");
  }

  function show(id, likes) {
    counters(id).forEach(function (el) {
      var target = el.hasAttribute("data-likes-post")
        ? el.querySelector("[data-likes-count]")
        : el;
      if (target) target.textContent = String(likes);
      el.setAttribute("data-likes", String(likes));
    });
  }

  function pressed(button, on) {
    button.setAttribute("aria-pressed", on ? "true" : "false");
    button.setAttribute("aria-label", on ? unlikeLabel : likeLabel);
    button.title = on ? unlikeLabel : likeLabel;
  }

  function request(method, id, receipt) {
    var headers = receipt ? { "X-Like-Receipt": receipt } : {};
    return fetch(api + "/likes/" + encodeURIComponent(id), {
      method: method,
      headers: headers,
      cache: "no-store",
    }).then(function (response) {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    });
  }

  function click(event) {
    var button = event.currentTarget;
    var id = idOf(button);
    var current = parseInt(button.getAttribute("data-likes") || "0", 10) || 0;
    var receipt = stored(id);
    if (receipt) {
      store(id, null);
      pressed(button, false);
      show(id, Math.max(current - 1, 0));
      // A like without a receipt (a repeat) cannot be undone server-side.
      if (receipt === "1") return;
      request("DELETE", id, receipt)
        .then(function (body) {
          remember(id, body.likes, false);
          show(id, body.likes);
        })
        .catch(warn);
    } else {
      store(id, "1");
      pressed(button, true);
      show(id, current + 1);
      request("POST", id)
        .then(function (body) {
          if (body.receipt) store(id, body.receipt);
          remember(id, body.likes, true);
          show(id, body.likes);
        })
        .catch(warn);
    }
  }

  function scan() {
    var ids = [];
    document.querySelectorAll("[data-likes-post],[data-likes-count]").forEach(function (el) {
      if (el.hasAttribute("data-likes-ready")) return;
      var id = idOf(el);
      if (!id) return; // the count slot inside a button: shown through its button
      el.setAttribute("data-likes-ready", "");
      if (el.hasAttribute("data-likes-post")) {
        pressed(el, !!stored(id));
        el.addEventListener("click", click);
      }
      if (ids.indexOf(id) < 0) ids.push(id);
    });
    for (var i = 0; i < ids.length; i += BATCH) fetchCounts(ids.slice(i, i + BATCH));
  }

  function fetchCounts(ids) {
    var query = ids.map(encodeURIComponent).join(",");
    var mine = ids.some(function (id) { return recent(id) !== null; });
    fetch(api + "/likes/?ids=" + query, { cache: mine ? "reload" : "default" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (rows) {
        rows.forEach(function (row) { show(row.post_id, consistent(row.post_id, row.likes)); });
      })
      .catch(function (error) {
        warn(error);
        ids.forEach(function (id) { show(id, 0); });
      });
  }

  var pending = null;
  function rescan() {
    if (pending) return;
    pending = setTimeout(function () {
      pending = null;
      scan();
    }, 50);
  }

  function start() {
    scan();
    if (window.MutationObserver) {
      new MutationObserver(rescan).observe(document.body, { childList: true, subtree: true });
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
