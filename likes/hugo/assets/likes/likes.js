/*
 * Like button for static sites. No dependencies, no globals.
 *
 * <link rel="stylesheet" href="https://api.example.com/static/likes/likes.css">
 * <script src="https://api.example.com/static/likes/likes.js"
 *         data-api="https://api.example.com" data-lang="en" defer></script>
 *
 * Buttons:   <button type="button" class="likes-button" data-likes-post="my-post"
 *              data-likes-title="My post">…<span data-likes-count></span></button>
 *            (type="submit" in a form that posts to the API likes without JS)
 * Counts:    <span data-likes-count="my-post"></span>  (list pages)
 * Reactions: <div data-likes-reactions="my-post" data-reactions="👍,❤️"></div>
 *            (LIKES_REACTIONS; or its own <button data-reaction="👍">s)
 * Optional:  data-label-like / data-label-unlike on the script tag; data-site,
 *            the site's slug where several blogs share one service.
 *
 * It shows what the service did: a click it refused is rolled back, and a
 * count it could not send keeps its placeholder.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var root = document.documentElement;
  if (!script || root.hasAttribute("data-likes-loaded")) return;
  root.setAttribute("data-likes-loaded", "");

  var data = script.dataset;
  var api = (data.api || new URL(script.src).origin).replace(/\/+$/, "");
  // The Origin names the site, or data-site.
  var site = data.site ? "site=" + encodeURIComponent(data.site) : "";
  var LABELS = {
    en: { like: "Like", unlike: "Unlike", react: "React with", reactions: "Reactions" },
    es: {
      like: "Me gusta",
      unlike: "Ya no me gusta",
      react: "Reaccionar con",
      reactions: "Reacciones",
    },
  };
  var locale = data.lang || root.lang || "en";
  var labels = LABELS[locale.slice(0, 2).toLowerCase()] || LABELS.en;
  var likeLabel = data.labelLike || labels.like;
  var unlikeLabel = data.labelUnlike || labels.unlike;
  var BATCH = 100;
  var TITLE_MAX = 200;
  var told = {};
  var busy = {};
  var missed = [];

  function tell(kind, level, message) {
    if (told[kind]) return;
    told[kind] = true;
    console[level]("likes: " + message);
  }

  // Say once per page what went wrong and what to set. A refused CORS request
  // and an unreachable service are the same network error to fetch; a no-cors
  // request still reaches a running service (its answer is opaque), so it
  // tells the two apart.
  function fail(error, rate) {
    if (error.status === 429) {
      tell("limited", "warn", "rate limited (HTTP 429), retry after " + error.retry +
        " s. Raise " + rate + ", or set CLIENT_IP_HEADER if visitors share an address.");
    } else if (error.status) {
      tell("http", "warn", api + " answered HTTP " + error.status +
        (error.detail ? ": " + error.detail : ""));
    } else if (error.network) {
      fetch(api + "/health", { mode: "no-cors", cache: "no-store" }).then(
        function () {
          tell("cors", "error", api + " refused this origin (CORS): set CORS_ORIGINS=" +
            location.origin + " on the likes service (comma-separated list).");
        },
        function () {
          tell("down", "warn", api + " is unreachable (down, or data-api is wrong); " +
            "likes work again once it is back.");
        }
      );
    } else {
      tell("http", "warn", api + " did not answer as a likes service: " + error);
    }
  }

  function format(options) {
    try {
      var formatter = new Intl.NumberFormat(locale, options);
      return function (n) {
        return formatter.format(n);
      };
    } catch (e) {
      return String; // no Intl, or a language tag it does not know
    }
  }
  var compact = format({ notation: "compact", maximumFractionDigits: 1 });
  var exact = format({});

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

  function buttons(id) {
    return counters(id).filter(function (el) {
      return el.hasAttribute("data-likes-post");
    });
  }

  function idOf(el) {
    return decode(
      el.getAttribute("data-likes-post") ||
        el.getAttribute("data-likes-count") ||
        el.getAttribute("data-likes-reactions") ||
        ""
    );
  }

  // An unknown count (null) leaves the placeholder as it is: never a made-up 0.
  function show(id, likes) {
    if (likes === null) return;
    counters(id).forEach(function (el) {
      var target = el.hasAttribute("data-likes-post")
        ? el.querySelector("[data-likes-count]")
        : el;
      if (target) {
        target.textContent = compact(likes);
        target.title = exact(likes);
      }
      el.setAttribute("data-likes", String(likes));
    });
  }

  function pressed(button, on) {
    button.setAttribute("aria-pressed", on ? "true" : "false");
    button.setAttribute("aria-label", on ? unlikeLabel : likeLabel);
    button.title = on ? unlikeLabel : likeLabel;
    if (!on) button.removeAttribute("data-likes-pop");
  }

  function titleOf(button) {
    var title = button.getAttribute("data-likes-title") || document.title || "";
    title = title.replace(/\s+/g, " ").trim().slice(0, TITLE_MAX);
    return title.replace(/[\ud800-\udbff]$/, ""); // not half a character
  }

  function request(method, url, init) {
    if (site) url += (url.indexOf("?") < 0 ? "?" : "&") + site;
    init.method = method;
    init.cache = init.cache || "no-store";
    return fetch(url, init).then(function (response) {
      if (response.ok) return response.json();
      var error = new Error("HTTP " + response.status);
      error.status = response.status;
      error.retry = response.headers.get("Retry-After");
      return response.json().then(
        function (body) {
          error.detail = body.detail;
          throw error;
        },
        function () {
          throw error;
        }
      );
    }, function () {
      var error = new Error("network");
      error.network = true; // refused by CORS, or the service is unreachable
      throw error;
    });
  }

  // One like or unlike at a time per post; `undo` puts back what the click
  // changed when the service did not do it.
  function send(method, id, init, done, undo) {
    busy[id] = true;
    buttons(id).forEach(function (b) {
      b.setAttribute("aria-busy", "true");
    });
    function idle() {
      busy[id] = false;
      buttons(id).forEach(function (b) {
        b.removeAttribute("aria-busy");
      });
    }
    request(method, api + "/likes/" + encodeURIComponent(id), init)
      .then(function (body) {
        done(body);
        if (missed.length) batches(missed.splice(0));
      }, function (error) {
        undo(error);
        fail(error, "LIKES_POST_RATE");
      })
      .then(idle, idle);
  }

  function stop(event) {
    event.preventDefault();
  }

  function click(event) {
    var button = event.currentTarget;
    stop(event); // no form submission
    var id = idOf(button);
    if (busy[id]) return;
    var known = button.getAttribute("data-likes");
    var count = known === null ? null : parseInt(known, 10) || 0;
    var receipt = stored(id);
    function state(on) {
      buttons(id).forEach(function (b) {
        pressed(b, on);
      });
    }
    if (receipt) {
      store(id, null);
      state(false);
      // A like without a receipt (a repeat) was not counted from here: no
      // decrement to ask for, and the count stays what the service said.
      if (receipt === "1") return;
      show(id, count === null ? null : Math.max(count - 1, 0));
      send("DELETE", id, { headers: { "X-Like-Receipt": receipt } },
        function (body) {
          remember(id, body.likes, false);
          show(id, body.likes);
        },
        function (error) {
          // A receipt the service refuses will never work: keep the like.
          store(id, error.status === 400 || error.status === 403 ? "1" : receipt);
          state(true);
          show(id, count);
        });
    } else {
      store(id, "1");
      state(true);
      button.setAttribute("data-likes-pop", "");
      show(id, count === null ? null : count + 1);
      send("POST", id, {
        // text/plain keeps it a CORS-simple request: no preflight.
        headers: { "Content-Type": "text/plain;charset=UTF-8" },
        body: JSON.stringify({ title: titleOf(button) }),
      },
        function (body) {
          // A duplicate is a like already counted: pressed, with no receipt.
          store(id, body.receipt || "1");
          remember(id, body.likes, true);
          show(id, body.likes);
        },
        function () {
          store(id, null);
          state(false);
          show(id, count);
        });
    }
  }

  // Reactions: a toggle button each, counted like a like.

  function reactionKey(id, name) {
    return id + "\u001f" + name;
  }

  function reactionButtons(id) {
    var found = [];
    document.querySelectorAll("[data-likes-reactions]").forEach(function (bar) {
      if (idOf(bar) !== id) return;
      bar.querySelectorAll("button[data-reaction]").forEach(function (b) {
        found.push(b);
      });
    });
    return found;
  }

  function showReactions(id, counts) {
    if (!counts) return;
    document.querySelectorAll("[data-likes-reactions]").forEach(function (bar) {
      if (idOf(bar) === id && !bar.querySelector("button")) {
        setUpReactions(bar, id, Object.keys(counts));
      }
    });
    reactionButtons(id).forEach(function (b) {
      var n = counts[b.getAttribute("data-reaction")];
      if (typeof n !== "number") return;
      var slot = b.querySelector("[data-likes-reaction-count]");
      if (slot) {
        slot.textContent = compact(n);
        slot.title = exact(n);
      }
      b.setAttribute("data-likes", String(n));
    });
  }

  function reactionPressed(id, name, on) {
    reactionButtons(id).forEach(function (b) {
      if (b.getAttribute("data-reaction") === name) {
        b.setAttribute("aria-pressed", on ? "true" : "false");
      }
    });
  }

  function makeReactionButton(name) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "likes-reaction";
    button.setAttribute("data-reaction", name);
    var label = document.createElement("span");
    label.className = "likes-sr";
    label.textContent = labels.react + " ";
    var emoji = document.createElement("span");
    emoji.textContent = name;
    var count = document.createElement("span");
    count.className = "likes-count";
    count.setAttribute("data-likes-reaction-count", "");
    button.append(label, emoji, " ", count);
    return button;
  }

  function react(event) {
    var button = event.currentTarget;
    stop(event); // no form submission
    var id = idOf(button.closest("[data-likes-reactions]"));
    var name = button.getAttribute("data-reaction");
    var key = reactionKey(id, name);
    if (busy[key]) return;
    busy[key] = true;
    var receipt = stored(key, "likes-r:");
    var on = !receipt;
    var known = button.getAttribute("data-likes");
    var before = {};
    if (known !== null) {
      before[name] = parseInt(known, 10) || 0;
    }
    var after = {};
    if (known !== null) after[name] = Math.max(before[name] + (on ? 1 : -1), 0);
    store(id, String(Date.now()), "likes-rt:");
    reactionPressed(id, name, on);
    store(key, on ? "1" : null, "likes-r:");
    function idle() {
      busy[key] = false;
    }
    if (!on && receipt === "1") return idle(); // counted elsewhere: nothing to undo
    showReactions(id, after);
    var init = on
      ? {
          headers: { "Content-Type": "text/plain;charset=UTF-8" },
          body: JSON.stringify({ title: titleOf(button), reaction: name }),
        }
      : { headers: { "X-Like-Receipt": receipt } };
    request(on ? "POST" : "DELETE", api + "/likes/" + encodeURIComponent(id), init)
      .then(function (body) {
        if (on) store(key, body.receipt || "1", "likes-r:");
        showReactions(id, body.reactions);
      }, function (error) {
        var keep = !on && (error.status === 400 || error.status === 403);
        store(key, on ? null : keep ? "1" : receipt, "likes-r:");
        reactionPressed(id, name, !on);
        showReactions(id, before);
        fail(error, "LIKES_POST_RATE");
      })
      .then(idle, idle);
  }

  // Buttons: the bar's own, data-reactions, or the site's (from a count read).
  function setUpReactions(bar, id, names) {
    if (!bar.querySelector("button[data-reaction]")) {
      names = names || (bar.getAttribute("data-reactions") || "").split(",");
      names.forEach(function (name) {
        name = name.trim();
        if (name) bar.appendChild(makeReactionButton(name));
      });
    }
    if (!bar.hasAttribute("role")) bar.setAttribute("role", "group");
    if (!bar.hasAttribute("aria-label")) bar.setAttribute("aria-label", labels.reactions);
    bar.querySelectorAll("button[data-reaction]").forEach(function (b) {
      if (b.likesReady) return;
      b.likesReady = true;
      var name = b.getAttribute("data-reaction");
      b.setAttribute("aria-pressed", stored(reactionKey(id, name), "likes-r:") ? "true" : "false");
      b.addEventListener("click", react);
    });
    if (bar.form || bar.closest("form.likes-form")) {
      (bar.form || bar.closest("form.likes-form")).addEventListener("submit", stop);
    }
  }

  function reactedRecently(id) {
    return Date.now() - parseInt(stored(id, "likes-rt:") || "0", 10) < FRESH;
  }

  function scan() {
    var ids = [];
    document.querySelectorAll("[data-likes-reactions]").forEach(function (bar) {
      if (bar.hasAttribute("data-likes-ready")) return;
      var id = decode(bar.getAttribute("data-likes-reactions") || "");
      if (!id) return;
      bar.setAttribute("data-likes-ready", "");
      setUpReactions(bar, id);
      if (ids.indexOf(id) < 0) ids.push(id);
    });
    document.querySelectorAll("[data-likes-post],[data-likes-count]").forEach(function (el) {
      if (el.hasAttribute("data-likes-ready")) return;
      var id = idOf(el);
      if (!id) return; // the count slot inside a button: shown through its button
      el.setAttribute("data-likes-ready", "");
      if (el.hasAttribute("data-likes-post")) {
        pressed(el, !!stored(id));
        el.addEventListener("click", click);
        if (el.form && el.form.classList.contains("likes-form")) {
          el.form.addEventListener("submit", stop);
        }
      }
      if (ids.indexOf(id) < 0) ids.push(id);
    });
    batches(ids);
  }

  function batches(ids) {
    for (var i = 0; i < ids.length; i += BATCH) fetchCounts(ids.slice(i, i + BATCH));
  }

  function fetchCounts(ids) {
    var query = ids.map(encodeURIComponent).join(",");
    var mine = ids.some(function (id) { return recent(id) !== null || reactedRecently(id); });
    request("GET", api + "/likes/?ids=" + query, { cache: mine ? "reload" : "default" })
      .then(function (rows) {
        rows.forEach(function (row) {
          show(row.post_id, consistent(row.post_id, row.likes));
          showReactions(row.post_id, row.reactions);
        });
      })
      .catch(function (error) {
        // Placeholders stay; the next like that goes through fetches them again.
        missed = missed.concat(ids);
        fail(error, "LIKES_GET_RATE");
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
