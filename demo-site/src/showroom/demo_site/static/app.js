// Product page renderer for the Showroom demo site.
// The server sends an empty <main id="app" data-api="..."> on purpose: the
// product only exists for clients that run this script, like a real
// single-page storefront. When rendering finishes, main[data-state] becomes
// "ready" (or "error").
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

  function link(item) {
    return el("a", { href: item.url }, [item.name]);
  }

  function render(main, p) {
    var crumbs = el("nav", { class: "breadcrumb", "aria-label": "Breadcrumb" }, []);
    p.breadcrumb.forEach(function (item) {
      crumbs.appendChild(link(item));
      crumbs.appendChild(document.createTextNode(" / "));
    });
    crumbs.appendChild(document.createTextNode(p.name));

    var rows = p.specs.map(function (row) {
      return el("tr", {}, [el("th", { scope: "row" }, [row[0]]), el("td", {}, [row[1]])]);
    });

    var related = el("ul", { class: "related" }, p.related.map(function (item) {
      return el("li", {}, [link(item)]);
    }));

    main.replaceChildren(
      crumbs,
      el("article", { class: "product" }, [
        el("img", { src: p.image, alt: p.name, width: "320", height: "240" }),
        el("h1", {}, [p.name]),
        el("p", { class: "price" }, [p.priceText]),
        el("p", { class: "availability", "data-availability": p.availability },
          [p.availabilityText]),
        el("p", { class: "sku" }, ["SKU: " + p.sku]),
        el("p", { class: "description" }, [p.description]),
        el("h2", {}, ["Specifications"]),
        el("table", { class: "specs" }, [el("tbody", {}, rows)])
      ]),
      el("section", { class: "related-products" }, [
        el("h2", {}, ["You may also like"]), related
      ])
    );
    main.setAttribute("data-state", "ready");
  }

  function start() {
    var main = document.getElementById("app");
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
        main.textContent = "Sorry, this product could not be loaded.";
        main.setAttribute("data-state", "error");
      });
  }

  document.addEventListener("DOMContentLoaded", start);
})();
