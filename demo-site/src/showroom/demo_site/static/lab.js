// Article renderer for the lab's JavaScript section (/lab/js/articles/N).
// The server sends an empty <main id="article-app" data-api="...">; this script
// fetches the article's JSON and renders the same content and links the static
// twin (/lab/static/articles/N) serves as plain HTML. When rendering finishes,
// main[data-state] becomes "ready" (or "error").
(function () {
  "use strict";

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      node.setAttribute(key, attrs[key]);
    });
    (children || []).forEach(function (child) {
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function render(main, a) {
    document.title = a.title + " | Showroom Lab";
    var index = a.links.filter(function (l) { return l.rel === "index"; })[0];
    var crumb = el("nav", { class: "breadcrumb", "aria-label": "Breadcrumb" },
      [el("a", { href: index.url }, [index.name])]);
    var article = el("article", { class: "guide" }, [
      el("h1", {}, [a.title]),
      el("p", { class: "byline" }, [a.byline]),
      el("p", { class: "summary" }, [a.summary])
    ]);
    a.sections.forEach(function (s) {
      article.appendChild(el("section", {}, [el("h2", {}, [s.heading])].concat(
        s.paragraphs.map(function (p) { return el("p", {}, [p]); }))));
    });
    article.appendChild(el("h2", {}, ["Checklist"]));
    article.appendChild(el("ul", { class: "checklist" },
      a.checklist.map(function (c) { return el("li", {}, [c]); })));
    var pager = el("nav", { class: "pager", "aria-label": "Articles" }, []);
    a.links.forEach(function (l) {
      if (l.rel !== "index") {
        pager.appendChild(el("a", { rel: l.rel, href: l.url }, [l.name]));
        pager.appendChild(document.createTextNode(" "));
      }
    });
    main.replaceChildren(crumb, article, pager);
    main.setAttribute("data-state", "ready");
  }

  function start() {
    var main = document.getElementById("article-app");
    if (!main || !main.dataset.api) {
      return;
    }
    fetch(main.dataset.api, { headers: { Accept: "application/json" } })
      .then(function (res) {
        if (!res.ok) {
          throw new Error("HTTP " + res.status);
        }
        return res.json();
      })
      .then(function (data) {
        render(main, data);
      })
      .catch(function () {
        main.textContent = "Sorry, this guide could not be loaded.";
        main.setAttribute("data-state", "error");
      });
  }

  document.addEventListener("DOMContentLoaded", start);
})();
